// The golden self-test that travels inside an hh .tflite (hh.edge.selftest), judged in the
// browser: hh-convert packs a few validation images as JPEGs with the answers the converted
// model gave on the workstation (its raw output tensor, and probabilities). The page sends them
// through its own path (the browser's JPEG decoder, the JavaScript resize, LiteRT.js) and
// must get those answers within the model's rule, or it refuses to diagnose.
// This module is the pure part: reading the manifest and judging the outcomes.

import { argmax } from "./answers.js";
import { ModelFileError } from "./modelfile.js";

export const MANIFEST = "selftest.json";
const VERSIONS = [1, 2];

const isNumber = (v) => typeof v === "number" && Number.isFinite(v);

function probabilities(values, key, file, width) {
  if (!Array.isArray(values) || !values.length || !values.every((v) => isNumber(v) && v >= 0 && v <= 1)) {
    throw new Error(`case ${file}: ${key} is not a list of probabilities`);
  }
  if (values.length !== width) throw new Error(`case ${file}: ${key} has ${values.length} probabilities for ${width} classes`);
  return values;
}

// {cases, tolerance, maxSteps} from a model's packed files, null when it carries no self-test,
// ModelFileError when it is damaged (checked as hh.edge.selftest.SelfTest.from_files checks).
export function parseSelfTest(files, classNames) {
  if (!files[MANIFEST]) return null;
  try {
    return readManifest(JSON.parse(new TextDecoder().decode(files[MANIFEST])), files, classNames.length);
  } catch (error) {
    throw new ModelFileError(`its self-test is damaged (${MANIFEST}: ${error.message})`);
  }
}

function readManifest(manifest, files, width) {
  if (manifest === null || typeof manifest !== "object" || Array.isArray(manifest)) throw new Error("not a JSON object");
  const { version, tolerance } = manifest;
  if (!VERSIONS.includes(version)) throw new Error(`version ${version}, this page reads ${VERSIONS.join(" and ")}`);
  if (!isNumber(tolerance) || tolerance < 0 || tolerance >= 1) throw new Error(`tolerance ${tolerance} is not a probability difference`);
  const maxSteps = version >= 2 ? manifest.max_steps : null;
  if (version >= 2 && !(Number.isInteger(maxSteps) && maxSteps >= 0 && maxSteps < 256)) {
    throw new Error(`max_steps ${maxSteps} is not a number of output steps`);
  }
  if (!Array.isArray(manifest.cases) || !manifest.cases.length) throw new Error("it holds no images (an empty self-test proves nothing)");
  const cases = manifest.cases.map((raw) => {
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new Error("a case is not an object");
    const { file, label } = raw;
    if (typeof file !== "string" || !Object.hasOwn(files, file) || file === MANIFEST) throw new Error(`case image ${file} is not in the model`);
    if (typeof label !== "string") throw new Error(`case ${file} has no label`);
    const item = {
      file, label, image: files[file],
      keras: probabilities(raw.keras, "keras", file, width),
      expected: probabilities(raw.expected, "expected", file, width),
      raw: null,
    };
    if (version >= 2) {
      if (!Array.isArray(raw.raw) || !raw.raw.length || !raw.raw.every((v) => Number.isInteger(v) && Math.abs(v) < 2 ** 31)) {
        throw new Error(`case ${file}: raw is not a list of whole numbers (the output tensor)`);
      }
      item.raw = raw.raw;
    }
    return item;
  });
  return { cases, tolerance, maxSteps };
}

// The verdict (hh.edge.selftest.run_selftest) from this browser's outcome on every case:
// outcomes[i] = {raw: its raw output values, probabilities}. The device must give the
// workstation's raw outputs within max_steps (version 2; else probabilities within tolerance)
// and the same top-1 class on every image.
export function judgeSelfTest(selftest, outcomes, names) {
  let largest = 0;
  let worst = -1;
  let worstText = "";
  let agreeExpected = 0;
  let agreeKeras = 0;
  let steps = selftest.maxSteps === null ? null : 0;
  selftest.cases.forEach((item, n) => {
    const got = outcomes[n].probabilities;
    const difference = Math.max(...item.expected.map((v, i) => Math.abs((got[i] ?? Infinity) - v)));
    largest = Math.max(largest, difference);
    let badness = difference;
    if (steps !== null) {
      const raw = Array.from(outcomes[n].raw);
      const caseSteps = raw.length === item.raw.length ? Math.max(...raw.map((v, i) => Math.abs(v - item.raw[i]))) : 256;
      steps = Math.max(steps, caseSteps);
      badness += caseSteps;
    }
    const top = argmax(got);
    agreeExpected += top === argmax(item.expected);
    agreeKeras += top === argmax(item.keras);
    if (badness > worst) {
      worst = badness;
      const want = argmax(item.expected);
      worstText = `${item.file} (${item.label}): expected ${names[want]} ${item.expected[want].toFixed(2)}, `
        + `got ${names[top]} ${got[top].toFixed(2)}`;
    }
  });
  const images = selftest.cases.length;
  const close = steps !== null ? steps <= selftest.maxSteps : largest <= selftest.tolerance;
  return {
    images, maxDifference: largest, agreeExpected, agreeKeras, tolerance: selftest.tolerance, steps,
    maxSteps: selftest.maxSteps, worst: worstText, passed: close && agreeExpected === images,
  };
}

// One line as hh-camera prints it, for the page's details and the log.
export function selfTestLine(result) {
  const verdict = result.passed ? "passed" : "FAILED";
  const difference = result.steps !== null
    ? `max difference ${result.steps} output step(s) (${result.maxDifference.toFixed(3)} in probability) from the `
      + `workstation (allowed ${result.maxSteps})`
    : `max difference ${result.maxDifference.toFixed(3)} from the workstation (allowed ${result.tolerance.toFixed(3)})`;
  let text = `self-test ${verdict}: ${result.images} images, ${difference}, top-1 agrees on `
    + `${result.agreeExpected}/${result.images} (with Keras ${result.agreeKeras}/${result.images})`;
  if (!result.passed) text += `; worst: ${result.worst}`;
  return text;
}

// What the person holding the phone reads when the self-test fails: what it means, what to do.
export function refusalMessage(result) {
  return "This phone's browser does not give this model's answers, so it will not diagnose: update the "
    + "browser, or use another phone. (Checked on the model's own test images; worst: "
    + `${result.worst}.)`;
}
