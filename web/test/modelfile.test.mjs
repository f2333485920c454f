// Reading what an hh .tflite carries (src/modelfile.js) from bytes made here: a model part,
// then a stored zip of its files, as hh-convert appends it; with and without a zip comment
// (where hh-convert --sign puts the signature).
import assert from "node:assert/strict";
import { test } from "node:test";

import { ModelFileError, parseSpec, readAssociatedFiles, readModelFile } from "../src/modelfile.js";

const encoder = new TextEncoder();

// A stored (uncompressed) zip of {name: text}, after `prefix`, with an optional comment.
function withZip(prefix, files, comment = "") {
  const parts = [prefix];
  const central = [];
  let offset = prefix.length;
  for (const [name, text] of Object.entries(files)) {
    const nameBytes = encoder.encode(name);
    const data = encoder.encode(text);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint32(18, data.length, true);
    local.setUint32(22, data.length, true);
    local.setUint16(26, nameBytes.length, true);
    parts.push(new Uint8Array(local.buffer), nameBytes, data);
    const entry = new DataView(new ArrayBuffer(46));
    entry.setUint32(0, 0x02014b50, true);
    entry.setUint32(20, data.length, true);
    entry.setUint32(24, data.length, true);
    entry.setUint16(28, nameBytes.length, true);
    entry.setUint32(42, offset - prefix.length, true); // offsets relative to the archive, as zipfile's "a" mode writes them
    central.push(new Uint8Array(entry.buffer), nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const centralSize = central.reduce((n, part) => n + part.length, 0);
  const commentBytes = encoder.encode(comment);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, Object.keys(files).length, true);
  end.setUint16(10, Object.keys(files).length, true);
  end.setUint32(12, centralSize, true);
  end.setUint32(16, offset - prefix.length, true);
  end.setUint16(20, commentBytes.length, true);
  const all = [...parts, ...central, new Uint8Array(end.buffer), commentBytes];
  const out = new Uint8Array(all.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of all) {
    out.set(part, at);
    at += part.length;
  }
  return out.buffer;
}

const MODEL_PART = Uint8Array.from([0, 0, 0, 0, ...encoder.encode("TFL3"), ...new Array(24).fill(7)]);
const SPEC = { version: 5, height: 64, width: 64, class_names: ["brown_spot", "healthy"], class_mode: "categorical",
  interpolation: "bilinear", aspect: "squash", color_order: "RGB", resize: "exact",
  run: { id: "run1", started: "2026-12-02T03:00:00Z" } };
const FILES = { "labels.txt": "brown_spot\nhealthy\n", "preprocessing.json": JSON.stringify(SPEC),
  "labels_sw.txt": "Madoa ya kahawia\nMzima\n" };

test("a model's packed files read back, whether or not the archive carries a comment", () => {
  for (const comment of ["", "hh-signature ed25519 0123456789ab c2lnbmF0dXJl"]) {
    const files = readAssociatedFiles(withZip(MODEL_PART, FILES, comment));
    assert.deepEqual(Object.keys(files).sort(), Object.keys(FILES).sort());
    assert.equal(new TextDecoder().decode(files["labels.txt"]), FILES["labels.txt"]);
    const model = readModelFile(withZip(MODEL_PART, FILES, comment));
    assert.deepEqual(model.labels, ["brown_spot", "healthy"]);
    assert.deepEqual(model.names, { sw: ["Madoa ya kahawia", "Mzima"] });
    assert.equal(model.spec.run.id, "run1");
  }
});

test("what is not an hh model is refused with the reason", () => {
  assert.throws(() => readModelFile(withZip(Uint8Array.from(new Array(32).fill(1)), FILES)), /not a TFLite model/);
  assert.throws(() => readModelFile(withZip(MODEL_PART, { "labels.txt": "a\nb\n" })), /no hh labels and preprocessing spec/);
  const disagreeing = { ...FILES, "labels.txt": "healthy\nbrown_spot\n" };
  assert.throws(() => readModelFile(withZip(MODEL_PART, disagreeing)), /labels.txt and spec disagree/);
  assert.throws(() => readModelFile(withZip(MODEL_PART, { ...FILES, "preprocessing.json": "{" })), ModelFileError);
});

test("a spec is checked as hh.edge.spec checks it, older versions read with their resize", () => {
  assert.throws(() => parseSpec(JSON.stringify({ ...SPEC, version: 6 })), /newer than this page understands/);
  assert.throws(() => parseSpec(JSON.stringify({ ...SPEC, interpolation: "cubic" })), /interpolation/);
  assert.throws(() => parseSpec(JSON.stringify({ ...SPEC, height: 4 })), /image size/);
  assert.throws(() => parseSpec("[]"), /not a JSON object/);
  const { resize, run, ...older } = SPEC;
  assert.equal(resize, "exact");
  assert.ok(run);
  assert.equal(parseSpec(JSON.stringify({ ...older, version: 2 })).resize, "opencv");
});
