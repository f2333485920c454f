// The phone's pure modules against Python's answers on the same inputs, without a browser:
// tests/test_js_units.py writes the cases (model inputs from hh.edge.preprocess, a model file
// with names and a signature) into HH_PARITY_DIR and runs these tests. Alone, they skip.
import assert from "node:assert/strict";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { readModelFile } from "../src/modelfile.js";
import { parseSpec } from "../src/modelfile.js";
import { collectionZip, framePath } from "../src/collect.js";
import { plantVerdict, verdictLine } from "../src/plant.js";
import { checkSignature, publicKeyFromPem } from "../src/signature.js";
import { fitToSpec } from "../src/preprocess.js";
import { measure } from "../src/quality.js";

const folder = process.env.HH_PARITY_DIR;
const skip = folder ? false : "HH_PARITY_DIR not set (tests/test_js_units.py sets it)";

test("model inputs equal Python's byte for byte, every interpolation and aspect", { skip }, () => {
  const cases = readdirSync(folder).filter((name) => name.startsWith("resize_") && name.endsWith(".json"));
  assert.ok(cases.length >= 4, `${cases.length} cases`);
  for (const name of cases) {
    const item = JSON.parse(readFileSync(join(folder, name), "utf8"));
    const rgba = new Uint8Array(readFileSync(join(folder, item.rgba)));
    const expected = new Uint8Array(readFileSync(join(folder, item.expected)));
    const spec = parseSpec(JSON.stringify(item.spec));
    const ours = fitToSpec(rgba, item.width, item.height, spec);
    assert.equal(ours.length, expected.length, name);
    const differing = ours.reduce((n, value, i) => n + (value !== expected[i]), 0);
    assert.equal(differing, 0, `${name}: ${differing} of ${expected.length} values differ`);
  }
});

test("a signed model with display names reads as Python reads it", { skip }, () => {
  const expected = JSON.parse(readFileSync(join(folder, "model.json"), "utf8"));
  const bytes = readFileSync(join(folder, "model.tflite"));
  const model = readModelFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  assert.deepEqual(model.labels, expected.labels);
  assert.deepEqual(model.names, expected.names);
  assert.deepEqual(model.spec.run, expected.run);
});

test("quality measures equal Python's (grey and Laplacian exact, sums to 1e-5)", { skip }, () => {
  const cases = JSON.parse(readFileSync(join(folder, "quality.json"), "utf8"));
  assert.ok(cases.length >= 10);
  for (const item of cases) {
    const ours = measure(new Uint8Array(readFileSync(join(folder, item.rgb))), item.width, item.height);
    for (const key of ["sharpness", "brightness", "contrast"]) {
      const scale = Math.max(1, Math.abs(item[key]));
      assert.ok(Math.abs(ours[key] - item[key]) / scale < 1e-5, `${item.rgb} ${key}: ${ours[key]} vs Python ${item[key]}`);
    }
  }
});

test("a collection zip for Python's zipfile and hh-data merge (tests/test_js_units.py reads it)", { skip }, () => {
  const photo = new Uint8Array(readFileSync(join(folder, "collect_photo.jpg")));
  const other = new Uint8Array(readFileSync(join(folder, "collect_other.jpg")));
  const time = new Date(2026, 11, 2, 8, 0, 0, 5);
  const frame = (kind, label, data, predicted) => ({
    time: time.getTime(), kind, file: framePath(kind, label, time, 0.41), predicted, label: kind === "labelled" ? label : "",
    probability: 0.41, probabilities: { brown_spot: 0.41, healthy: 0.59 }, model: "e12babbbfba9", data,
  });
  const frames = [frame("labelled", "brown_spot", photo, "healthy"), frame("labelled", "healthy", other, "healthy"),
    frame("unsure", "healthy", other, "healthy")];
  writeFileSync(join(folder, "collection.zip"), collectionZip(frames, ["brown_spot", "healthy"]));
});

test("a plant's verdict is Python's, line for line", { skip }, () => {
  const { labels, cases } = JSON.parse(readFileSync(join(folder, "plants.json"), "utf8"));
  assert.equal(cases.length, 40);
  for (const item of cases) {
    const verdict = plantVerdict(item.leaves, labels);
    assert.equal(verdictLine(verdict), item.line);
    for (const [name, p] of Object.entries(item.probabilities)) assert.ok(Math.abs(verdict.probabilities[name] - p) < 1e-12, name);
  }
});

test("a model signed by Python verifies with its key and is refused unsigned, altered or with another key", { skip }, async () => {
  const expected = JSON.parse(readFileSync(join(folder, "model.json"), "utf8"));
  const bytes = new Uint8Array(readFileSync(join(folder, "model.tflite")));
  const key = publicKeyFromPem(readFileSync(join(folder, "model.pub"), "utf8"));
  const other = publicKeyFromPem(readFileSync(join(folder, "other.pub"), "utf8"));
  assert.equal(await checkSignature(bytes.slice().buffer, key), expected.key_id);
  await assert.rejects(checkSignature(bytes.slice().buffer, other), new RegExp(`signed with another key \\(${expected.key_id}\\), not the trusted one \\(${expected.other_id}\\)`));
  const altered = bytes.slice();
  altered[100] ^= 1; // one bit of the network
  await assert.rejects(checkSignature(altered.buffer, key), /does not match its bytes/);
  const appended = new Uint8Array([...bytes, 0, 1, 2]);
  await assert.rejects(checkSignature(appended.buffer, key), /altered after signing \(bytes added or removed/);
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  let end = bytes.length - 22;
  while (view.getUint32(end, true) !== 0x06054b50 || end + 22 + view.getUint16(end + 20, true) !== bytes.length) end--;
  const unsigned = bytes.slice(0, end + 22);
  unsigned[end + 20] = 0;
  unsigned[end + 21] = 0;
  await assert.rejects(checkSignature(unsigned.buffer, key), /not signed, and this page runs signed models only/);
  const damaged = bytes.slice();
  damaged[damaged.length - 70] = 0x20; // a space inside the signature's base64: three parts
  await assert.rejects(checkSignature(damaged.buffer, key), /damaged|does not match/);
  assert.throws(() => publicKeyFromPem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"), /not an Ed25519 public key/);
});
