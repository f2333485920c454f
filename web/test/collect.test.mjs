// Field collection on the phone (src/collect.js) and its zip (src/zip.js): the same policy and
// layout as hh-camera --collect; the archive read back by the page's own zip reader. Python's
// zipfile and hh-data merge read it in tests/test_js_units.py (parity.test.mjs writes one).
import assert from "node:assert/strict";
import { test } from "node:test";

import { Collector, collectionZip, framePath, journal, plainLabel } from "../src/collect.js";
import { readAssociatedFiles } from "../src/modelfile.js";
import { crc32, makeZip } from "../src/zip.js";

const answer = (top, probability, retake = null) => ({ top, probability, retake });

test("unsure frames: below the threshold or a flip, never a retake, at most one every 2 s", () => {
  const collector = new Collector({ threshold: 0.6, everyMs: 2000 });
  assert.equal(collector.wants(answer("a", 0.9), 0), false); // sure, first frame
  assert.equal(collector.wants(answer("a", 0.4, "too dark"), 10), false); // retake
  assert.equal(collector.wants(answer("a", 0.5), 20), true); // unsure
  collector.saved(1000, "unsure", 20);
  assert.equal(collector.wants(answer("b", 0.95), 1000), false); // a flip, but too soon
  assert.equal(collector.wants(answer("a", 0.95), 2100), true); // a flip back, in time
  collector.saved(1000, "unsure", 2100);
  assert.equal(collector.wants(answer("a", 0.95), 5000), false); // sure and steady
});

test("the size bound stops collecting once, and says why", () => {
  const collector = new Collector({ maxBytes: 2500, usedBytes: 1000 });
  assert.equal(collector.admit(1000), true);
  collector.saved(1000, "labelled", 0);
  assert.equal(collector.admit(1000), false);
  assert.match(collector.stopped, /reached its limit/);
  assert.equal(collector.wants(answer("a", 0.1), 1e9), false);
  assert.equal(collector.admit(1), false);
});

test("paths as hh-camera --collect names them; a label that is not a plain name is refused", () => {
  const time = new Date(2026, 11, 2, 8, 5, 9, 42);
  assert.equal(framePath("unsure", "brown_spot", time, 0.4149), "unsure/brown_spot/20261202-080509-042_0.41.jpg");
  assert.equal(framePath("labelled", "healthy", time, 0.9), "labelled/healthy/20261202-080509-042.jpg");
  for (const label of ["../up", "a/b", "a\\b", ".hidden", " padded", "two\nlines", ""]) {
    assert.equal(plainLabel(label), false, label);
    assert.throws(() => framePath("labelled", label, time, 0.5), /cannot be a folder name/);
  }
});

test("the zip holds every frame at its path, a name taken twice made unique, and the journal", () => {
  const bytes = (text) => new TextEncoder().encode(text);
  const frames = [
    { time: 1764662709042, kind: "labelled", file: "labelled/healthy/x.jpg", predicted: "brown_spot", label: "healthy",
      probability: 0.55, probabilities: { brown_spot: 0.55, healthy: 0.45 }, model: "e12babbbfba9", data: bytes("one") },
    { time: 1764662709042, kind: "labelled", file: "labelled/healthy/x.jpg", predicted: "healthy", label: "healthy",
      probability: 0.7, probabilities: { brown_spot: 0.3, healthy: 0.7 }, model: "e12babbbfba9", data: bytes("two") },
    { time: 1764662710000, kind: "unsure", file: "unsure/brown_spot/y_0.41.jpg", predicted: "brown_spot", label: "",
      probability: 0.41, probabilities: { brown_spot: 0.41, healthy: 0.59 }, model: "e12babbbfba9", data: bytes("three") },
  ];
  const archive = collectionZip(frames, ["brown_spot", "healthy"]);
  const files = readAssociatedFiles(archive.buffer);
  assert.deepEqual(Object.keys(files), ["labelled/healthy/x.jpg", "labelled/healthy/x-1.jpg", "unsure/brown_spot/y_0.41.jpg", "collected.csv"]);
  assert.equal(new TextDecoder().decode(files["labelled/healthy/x-1.jpg"]), "two");
  const rows = new TextDecoder().decode(files["collected.csv"]).trimEnd().split("\n");
  assert.equal(rows[0], "time,kind,file,predicted,label,probability,brown_spot,healthy,source,model");
  assert.equal(rows[2], "1764662709.042,labelled,labelled/healthy/x-1.jpg,healthy,healthy,0.70000,0.30000,0.70000,phone camera,e12babbbfba9");
  assert.equal(journal([], ["a"]), "time,kind,file,predicted,label,probability,a,source,model\n");
});

test("CRC-32 is the standard one; an empty archive is a valid end record", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")).toString(16), "cbf43926");
  assert.equal(makeZip([]).length, 22);
});
