// Signed models on the phone, as hh.edge.trust checks them on a Pi: an Ed25519 signature over
// the whole .tflite, carried in the comment of the zip archive that ends every hh model. The
// signed bytes are the file with that comment empty. A page built with a trusted public key
// (make web TRUST=field.pub) runs only models signed with its private key. The verification is
// the browser's own WebCrypto (Ed25519), no hand-written cryptography.

import { ModelFileError } from "./modelfile.js";

const TAG = "hh-signature ed25519 ";
const END = 0x06054b50;
const END_SIZE = 22;
// DER of an Ed25519 SubjectPublicKeyInfo before its 32 key bytes (RFC 8410).
const SPKI_PREFIX = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

// Where the zip's end record starts, when it is the file's last thing (its comment included).
function endOfArchive(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const low = Math.max(0, bytes.length - END_SIZE - 65535);
  for (let at = bytes.length - END_SIZE; at >= low; at--) {
    if (view.getUint32(at, true) === END && at + END_SIZE + view.getUint16(at + 20, true) === bytes.length) return at;
  }
  return null;
}

// Base64 text -> bytes; no bytes when it is not base64.
function fromBase64(text) {
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return new Uint8Array();
  }
}

// The raw 32 bytes of an Ed25519 public key in PEM (hh-data keygen's .pub).
export function publicKeyFromPem(text) {
  const der = fromBase64(String(text).replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(/\s+/g, ""));
  if (der.length !== 44 || SPKI_PREFIX.some((b, i) => der[i] !== b)) {
    throw new ModelFileError("the trusted key is not an Ed25519 public key (make one with hh-data keygen)");
  }
  return der.subarray(12);
}

// The short name hh gives bytes (a key: hh.edge.trust.key_id; a model file: its identity,
// hh.edge.runtime.Classifier.identity): the first 12 hex digits of their SHA-256.
export async function shortDigest(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest.subarray(0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
}

// The key id when `buffer` (an hh .tflite) is signed with the trusted key (raw bytes); otherwise
// ModelFileError saying why: unsigned, signed with another key, or altered.
export async function checkSignature(buffer, trustedRaw) {
  const bytes = new Uint8Array(buffer);
  const end = endOfArchive(bytes);
  const comment = end === null ? "" : new TextDecoder("latin1").decode(bytes.subarray(end + END_SIZE));
  if (end === null || !comment.startsWith(TAG)) {
    const tail = new TextDecoder("latin1").decode(bytes.subarray(Math.max(0, bytes.length - END_SIZE - 65535)));
    if (tail.includes(TAG)) throw new ModelFileError("altered after signing (bytes added or removed at its end); not run");
    throw new ModelFileError("not signed, and this page runs signed models only (hh-convert --sign)");
  }
  const expected = await shortDigest(trustedRaw);
  const parts = comment.slice(TAG.length).split(" ");
  if (parts.length !== 2) throw new ModelFileError("its signature is damaged (altered after signing); not run");
  if (parts[0] !== expected) throw new ModelFileError(`signed with another key (${parts[0]}), not the trusted one (${expected})`);
  const signature = fromBase64(parts[1]);
  const signed = new Uint8Array(end + END_SIZE);
  signed.set(bytes.subarray(0, end + 20)); // the comment's length: zero, as it was when signed
  const key = await crypto.subtle.importKey("raw", trustedRaw, { name: "Ed25519" }, false, ["verify"]);
  const valid = signature.length === 64 && await crypto.subtle.verify({ name: "Ed25519" }, key, signature, signed);
  if (!valid) throw new ModelFileError("its signature does not match its bytes: the file was altered after signing; not run");
  return expected;
}
