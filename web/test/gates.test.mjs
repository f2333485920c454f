// The phone's gates, the same rules as hh-camera's: the quality gate (src/quality.js, measures
// as hh.edge.quality), the answer shown (src/answers.js, as hh.edge.camera) and the self-test's
// verdict (src/selftest.js, as hh.edge.selftest). Parity with Python's numbers: parity.test.mjs.
import assert from "node:assert/strict";
import { test } from "node:test";

import { decide, Smoother, UNCERTAIN } from "../src/answers.js";
import { ModelFileError, parseSpec } from "../src/modelfile.js";
import { BLURRY, check, greyOf, LOW_CONTRAST, measure, RETAKE, TOO_BRIGHT, TOO_DARK } from "../src/quality.js";
import { judgeSelfTest, parseSelfTest, refusalMessage, selfTestLine } from "../src/selftest.js";

const THRESHOLDS = { min_sharpness: 50, min_brightness: 40, max_brightness: 220, min_contrast: 10, calibrated_on: 100 };
const image = (w, h, f) => Uint8Array.from({ length: w * h * 3 }, (_, i) => f(Math.floor(i / 3) % w, Math.floor(i / 3 / w), i % 3));

test("grey is OpenCV's 15-bit weighted sum, rounded", () => {
  assert.deepEqual(Array.from(greyOf(Uint8Array.of(255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 10, 20, 30))), [76, 150, 29, 255, 18]);
});

test("a flat image measures no sharpness and no contrast; a checkerboard is sharp", () => {
  const flat = measure(image(16, 16, () => 128), 16, 16);
  assert.deepEqual(flat, { sharpness: 0, brightness: 128, contrast: 0 });
  const board = measure(image(16, 16, (x, y) => ((x + y) % 2 ? 255 : 0)), 16, 16);
  assert.equal(board.brightness, 127.5);
  assert.equal(board.contrast, 127.5);
  // every pixel's four neighbours are the other colour (reflect-101 keeps that at the border): +-1020
  assert.equal(board.sharpness, 1020 * 1020);
});

test("the gate tries exposure first, then contrast, then sharpness", () => {
  assert.equal(check({ sharpness: 0, brightness: 10, contrast: 0 }, THRESHOLDS), TOO_DARK);
  assert.equal(check({ sharpness: 0, brightness: 250, contrast: 0 }, THRESHOLDS), TOO_BRIGHT);
  assert.equal(check({ sharpness: 0, brightness: 100, contrast: 5 }, THRESHOLDS), LOW_CONTRAST);
  assert.equal(check({ sharpness: 10, brightness: 100, contrast: 50 }, THRESHOLDS), BLURRY);
  assert.equal(check({ sharpness: 100, brightness: 100, contrast: 50 }, THRESHOLDS), null);
});

test("a spec's quality thresholds are checked as Python checks them", () => {
  const base = { height: 32, width: 32, class_names: ["a", "b"], version: 5 };
  assert.deepEqual(parseSpec(JSON.stringify({ ...base, quality: THRESHOLDS })).quality, THRESHOLDS);
  for (const quality of [{ ...THRESHOLDS, min_brightness: 230 }, { ...THRESHOLDS, min_sharpness: -1 }, { ...THRESHOLDS, extra: 1 },
    { ...THRESHOLDS, calibrated_on: 0 }, [1, 2], "high"]) {
    assert.throws(() => parseSpec(JSON.stringify({ ...base, quality })), /quality thresholds/);
  }
});

test("the answer: retake before all, unknown whatever its probability, uncertain below the threshold", () => {
  const labels = ["brown_spot", "healthy", "unknown"];
  assert.equal(decide([0.9, 0.05, 0.05], labels).label, "brown_spot");
  assert.equal(decide([0.5, 0.3, 0.2], labels).label, UNCERTAIN);
  assert.equal(decide([0.2, 0.3, 0.5], labels).label, "unknown");
  assert.equal(decide([0.5, 0.3, 0.2], labels, { threshold: 0.4 }).label, "brown_spot");
  const retake = decide([0.9, 0.05, 0.05], labels, { retake: TOO_DARK });
  assert.deepEqual([retake.label, retake.top, retake.retake], [RETAKE, "brown_spot", TOO_DARK]);
});

test("smoothing averages the last K frames and leaves retake frames out", () => {
  const labels = ["a", "b"];
  const smoother = new Smoother(2);
  assert.deepEqual(decide([1, 0], labels, { smoother }).probabilities, [1, 0]);
  decide([0, 1], labels, { smoother, retake: BLURRY }); // not averaged in
  assert.deepEqual(decide([0.5, 0.5], labels, { smoother }).probabilities, [0.75, 0.25]);
  assert.deepEqual(decide([0, 1], labels, { smoother }).probabilities, [0.25, 0.75]); // only the last two
  assert.deepEqual(new Smoother(1).add([0.3, 0.7]), [0.3, 0.7]);
});

const bytes = (text) => new TextEncoder().encode(text);
const MANIFEST = {
  version: 2, tolerance: 0.03, max_steps: 1,
  cases: [
    { file: "selftest/0.jpg", label: "a", keras: [0.9, 0.1], expected: [0.88, 0.12], raw: [40, -40] },
    { file: "selftest/1.jpg", label: "b", keras: [0.2, 0.8], expected: [0.25, 0.75], raw: [-20, 20] },
  ],
};
const files = (manifest) => ({ "selftest.json": bytes(JSON.stringify(manifest)), "selftest/0.jpg": bytes("x"), "selftest/1.jpg": bytes("y") });

test("a self-test is read with its images; none is null; a damaged one says what is wrong", () => {
  const selftest = parseSelfTest(files(MANIFEST), ["a", "b"]);
  assert.equal(selftest.cases.length, 2);
  assert.equal(selftest.maxSteps, 1);
  assert.deepEqual(Array.from(selftest.cases[1].image), Array.from(bytes("y")));
  assert.equal(parseSelfTest({}, ["a", "b"]), null);
  const damaged = [
    [{ ...MANIFEST, version: 9 }, /version 9/],
    [{ ...MANIFEST, cases: [] }, /no images/],
    [{ ...MANIFEST, max_steps: "one" }, /max_steps/],
    [{ ...MANIFEST, cases: [{ ...MANIFEST.cases[0], file: "selftest/9.jpg" }] }, /not in the model/],
    [{ ...MANIFEST, cases: [{ ...MANIFEST.cases[0], expected: [0.5, 0.3, 0.2] }] }, /3 probabilities for 2 classes/],
    [{ ...MANIFEST, cases: [{ ...MANIFEST.cases[0], raw: [1.5, 2] }] }, /raw is not a list of whole numbers/],
  ];
  for (const [manifest, reason] of damaged) {
    assert.throws(() => parseSelfTest(files(manifest), ["a", "b"]), (error) => error instanceof ModelFileError && reason.test(error.message));
  }
  assert.throws(() => parseSelfTest({ "selftest.json": bytes("{") }, ["a", "b"]), /self-test is damaged/);
});

test("the verdict: within one output step and the same top class on every image passes", () => {
  const selftest = parseSelfTest(files(MANIFEST), ["a", "b"]);
  const same = judgeSelfTest(selftest, [{ raw: [41, -40], probabilities: [0.88, 0.12] }, { raw: [-20, 20], probabilities: [0.25, 0.75] }], ["a", "b"]);
  assert.equal(same.passed, true);
  assert.equal(same.steps, 1);
  assert.match(selfTestLine(same), /^self-test passed: 2 images, max difference 1 output step/);
  const off = judgeSelfTest(selftest, [{ raw: [40, -40], probabilities: [0.88, 0.12] }, { raw: [-17, 20], probabilities: [0.3, 0.7] }], ["a", "b"]);
  assert.equal(off.passed, false);
  assert.equal(off.steps, 3);
  assert.match(off.worst, /^selftest\/1\.jpg \(b\): expected b 0\.75, got b 0\.70$/);
  assert.match(refusalMessage(off), /does not give this model's answers.*update the browser, or use another phone/);
  // Another top class fails even within the steps; an output of another shape is as far off as it gets.
  const flipped = judgeSelfTest(selftest, [{ raw: [40, -40], probabilities: [0.4, 0.6] }, { raw: [-20, 20], probabilities: [0.25, 0.75] }], ["a", "b"]);
  assert.equal(flipped.passed, false);
  const shape = judgeSelfTest(selftest, [{ raw: [40], probabilities: [0.88, 0.12] }, { raw: [-20, 20], probabilities: [0.25, 0.75] }], ["a", "b"]);
  assert.equal(shape.steps, 256);
  const v1 = parseSelfTest(files({ ...MANIFEST, version: 1, max_steps: undefined }), ["a", "b"]);
  const byTolerance = judgeSelfTest(v1, [{ raw: [], probabilities: [0.9, 0.1] }, { raw: [], probabilities: [0.25, 0.75] }], ["a", "b"]);
  assert.deepEqual([byTolerance.passed, byTolerance.steps], [true, null]);
});
