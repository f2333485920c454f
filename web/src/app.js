// hh in the browser: the same int8 .tflite, offline, on the phone's camera.
// LiteRT.js (WebAssembly/XNNPACK on the CPU) runs the model; the preprocessing contract is
// src/preprocess.js; labels and the spec come from inside the model file (src/modelfile.js).
// Before it diagnoses, the page runs the model's packed self-test through its own path
// (src/selftest.js); every frame passes the model's quality gate (src/quality.js) and is
// answered as hh-camera answers (src/answers.js: retake, unknown, uncertain, smoothing).

import { loadAndCompile, loadLiteRt, Tensor } from "@litertjs/core";

import { argmax, decide, Smoother, UNCERTAIN, UNKNOWN } from "./answers.js";
import { ModelFileError, readAssociatedFiles, readModelFile } from "./modelfile.js";
import { namesFor } from "./names.js";
import { MAX_LEAVES, plantVerdict, verdictLine } from "./plant.js";
import { fitToSpec } from "./preprocess.js";
import { check, measure, RETAKE } from "./quality.js";
import { judgeSelfTest, parseSelfTest, refusalMessage, selfTestLine } from "./selftest.js";
import { checkSignature, publicKeyFromPem, shortDigest } from "./signature.js";
import { Collector, collectionZip, framePath, LABELLED, plainLabel, UNSURE } from "./collect.js";
import { addRecord, allRecords, clearRecords, FRAMES, openLog, StoreFull } from "./store.js";
import { diagnosisRecord, toCsv, toGeoJson } from "./survey.js";

const $ = (id) => document.getElementById(id);
// classified: camera frames classified; presented: frames the camera has shown (never fewer).
// selfTest: the verdict of the model's self-test on this browser (null: the model has none);
// trusted: the model may diagnose (its self-test passed here, or it carries none); refused: it
// failed, and the page gives no diagnosis with it.
// The public key built into this page (make web TRUST=field.pub; web/build.mjs defines it), or
// null: with one, only models signed with its private key run.
const TRUSTED_KEY = typeof HH_TRUSTED_KEY === "string" ? HH_TRUSTED_KEY : null;
// current: the model in use ({model, spec, io, labels, shown, identity}; its fields are also
// state.model, state.spec, ...); loads: a count of loads begun, so a slower earlier load never
// replaces a later one; logProblem: why the survey log cannot be kept, said until it can.
const state = { model: null, spec: null, io: null, facing: "environment", stream: null, frames: [], running: false,
  classified: 0, presented: 0, loopId: 0, shown: new Map(), selfTest: null, trusted: false, refused: false,
  current: null, loads: 0, diagnosing: false, logProblem: "",
  smoother: new Smoother(1), collector: new Collector(), kept: { [LABELLED]: 0, [UNSURE]: 0 }, lastAnswer: null, plant: { number: 1, leaves: [] },
  trustKey: TRUSTED_KEY ? publicKeyFromPem(TRUSTED_KEY) : null };
let runtime = null;

function showError(message) {
  // A log that cannot be kept stays said, below whatever else is.
  const text = [message, message === state.logProblem ? "" : state.logProblem].filter(Boolean).join("\n");
  $("error").textContent = text;
  $("error").hidden = !text;
}

function ensureRuntime() {
  // The wasm files are served from ./wasm/ beside the page (and cached for offline use).
  runtime ??= loadLiteRt(new URL("wasm/", document.baseURI).href);
  return runtime;
}

const TYPED = { uint8: Uint8Array, int8: Int8Array, float32: Float32Array };

// Load an hh .tflite from its bytes: labels and spec from inside, then compile for the CPU, then
// its self-test on this browser; only then does it replace the model in use. Nothing is
// diagnosed while a model loads; a load that fails leaves the model in use as it was.
export async function loadModel(buffer, name = "model") {
  const generation = ++state.loads;
  const wasTrusted = state.trusted;
  state.trusted = false;
  try {
    const loaded = await compileModel(buffer);
    const run = loaded.spec.run ? `, run ${loaded.spec.run.id} of ${loaded.spec.run.started.slice(0, 10)}` : "";
    const checked = loaded.selftest ? await checkOnThisBrowser(loaded, generation) : null;
    if (generation !== state.loads) return null; // a later load took over: it decides
    const refused = Boolean(checked && !checked.passed);
    Object.assign(state, {
      current: loaded, model: loaded.model, spec: loaded.spec, io: loaded.io, labels: loaded.labels, shown: loaded.shown,
      identity: loaded.identity, selfTest: checked, refused, trusted: !refused, lastAnswer: null,
    });
    state.smoother.clear();
    if (loaded.language) document.documentElement.lang = loaded.language;
    $("model-name").textContent = `${name}: ${loaded.labels.map(displayName).join(", ")} `
      + `(${loaded.spec.height}x${loaded.spec.width}; model ${loaded.identity ?? "?"}${run}`
      + `${loaded.signedBy ? `; signed by key ${loaded.signedBy}` : ""}; `
      + `${checked ? selfTestLine(checked) : "no self-test in this model: its answers here are unchecked"})`;
    $("verdict").textContent = "";
    showError(refused ? refusalMessage(checked) : "");
    if (refused) showAnswer("not checked", "unsure", "");
    else showAnswer("point at a leaf", "sure", "");
    showLabelButtons();
    showPlant();
    return { labels: loaded.labels, spec: loaded.spec, selfTest: checked };
  } catch (error) {
    if (generation === state.loads) state.trusted = wasTrusted; // the model in use goes on
    throw error;
  }
}

// Everything of a model file up to its self-test: {model, spec, io, labels, shown, identity,
// signedBy, selftest}, or ModelFileError saying what is wrong with it.
async function compileModel(buffer) {
  // A page built with a trusted key runs signed models only: checked before anything is read.
  const signedBy = state.trustKey ? await checkSignature(buffer, state.trustKey) : null;
  const { spec, labels, names } = readModelFile(buffer);
  const files = readAssociatedFiles(buffer);
  const io = files["quantization.json"] ? JSON.parse(new TextDecoder().decode(files["quantization.json"])) : null;
  if (!io) throw new ModelFileError("this model has no quantization.json: convert it again with hh-convert");
  const selftest = parseSelfTest(files, labels);
  await ensureRuntime();
  let model;
  try {
    model = await loadAndCompile(new Uint8Array(buffer), { accelerator: "wasm" });
  } catch (error) {
    throw new ModelFileError(`LiteRT.js cannot load it (${String(error.message || error).split("\n")[0]})`);
  }
  const shape = Array.from(model.getInputDetails()[0].shape);
  if (shape.join(",") !== [1, spec.height, spec.width, 3].join(",")) {
    throw new ModelFileError(`its input is [${shape}] but its spec says ${spec.height}x${spec.width}`);
  }
  const outputs = Array.from(model.getOutputDetails()[0].shape).at(-1);
  if (outputs !== labels.length) throw new ModelFileError(`it gives ${outputs} outputs but names ${labels.length} labels`);
  // The phone's own languages choose the names; a label without one shows itself.
  const shown = namesFor(names, labels, navigator.languages || [navigator.language]);
  const identity = await modelIdentity(buffer);
  return { model, spec, io, labels, shown: shown.names, language: shown.language, identity, signedBy, selftest };
}

// The self-test through this browser's own path: its JPEG decoder, the JavaScript resize and
// LiteRT.js, on the model being loaded (not yet the one in use).
async function checkOnThisBrowser(loaded, generation) {
  const outcomes = [];
  const { cases } = loaded.selftest;
  for (const [n, item] of cases.entries()) {
    if (generation === state.loads) showAnswer(`checking the model on this phone (${n + 1}/${cases.length})`, "unsure", "");
    let bitmap;
    try {
      bitmap = await createImageBitmap(new Blob([item.image], { type: "image/jpeg" }));
    } catch {
      throw new ModelFileError(`its self-test is damaged (image ${item.file} cannot be decoded)`);
    }
    outcomes.push(await classifyWith(loaded, pixelsOf(bitmap), bitmap.width, bitmap.height));
  }
  return judgeSelfTest(loaded.selftest, outcomes, loaded.labels.map((label) => loaded.shown.get(label) ?? label));
}

// A decoded image's RGBA pixels at its own size: no resampling, just the decoded pixels.
function pixelsOf(bitmap) {
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0);
  return context.getImageData(0, 0, bitmap.width, bitmap.height).data;
}

function quantize(rgb, io) {
  const { dtype, scale, zero_point: zero } = io.input;
  if (dtype === "uint8" && scale === 1 && zero === 0) return rgb; // hh's int8: raw pixels go in
  const Out = TYPED[dtype];
  if (dtype === "float32") return Float32Array.from(rgb);
  const [low, high] = dtype === "uint8" ? [0, 255] : [-128, 127];
  return Out.from(rgb, (v) => Math.max(low, Math.min(high, Math.round(v / scale + zero))));
}

// The output tensor -> probabilities. An hh int8 model outputs scores (its quantization.json
// says "outputs": "scores"): the softmax is applied here, in doubles, as hh.edge.runtime does.
function probabilitiesOf(values, io) {
  const { dtype, scale, zero_point: zero } = io.output;
  const real = Array.from(values, (v) => (dtype === "float32" || !scale ? v : (v - zero) * scale));
  if (io.outputs !== "scores") return real;
  const top = Math.max(...real);
  const shifted = real.map((v) => Math.exp(v - top));
  const total = shifted.reduce((a, b) => a + b, 0);
  return shifted.map((v) => v / total);
}

// RGBA pixels of a frame -> {label (the top class), probability, probabilities, raw (the output
// tensor's values), retake (the quality gate's reason, or null), ms}, by the model in use.
export async function classifyRgba(rgba, width, height) {
  return classifyWith(state.current, rgba, width, height);
}

async function classifyWith(loaded, rgba, width, height) {
  const started = performance.now();
  const { spec, model, io } = loaded;
  const rgb = fitToSpec(rgba, width, height, spec);
  const retake = spec.quality ? check(measure(rgb, spec.width, spec.height), spec.quality) : null;
  const input = new Tensor(quantize(rgb, io), [1, spec.height, spec.width, 3]);
  const outputs = await model.run(input);
  input.delete();
  const raw = outputs[0].toTypedArray();
  const probabilities = probabilitiesOf(raw, io);
  for (const tensor of outputs) tensor.delete();
  const best = argmax(probabilities);
  return { label: loaded.labels[best], probability: probabilities[best], probabilities, raw: Array.from(raw), retake,
    ms: performance.now() - started };
}

// An image URL as the page decodes it -> classification (used by the tests, and handy).
export async function classifyImageUrl(url) {
  const bitmap = await createImageBitmap(await (await fetch(url)).blob());
  return classifyRgba(pixelsOf(bitmap), bitmap.width, bitmap.height);
}

// The model's identity as hh names it everywhere (hh.edge.runtime.Classifier.identity): the
// start of the SHA-256 of the file. null where the browser has no WebCrypto (not a secure origin).
async function modelIdentity(buffer) {
  return globalThis.crypto?.subtle ? shortDigest(buffer) : null;
}

function displayName(label) {
  return state.shown.get(label) ?? label;
}

function showAnswer(text, kind, probability) {
  $("label").textContent = text;
  $("label").className = kind;
  $("probability").textContent = probability;
}

// What the frame's answer shows: the label, or retake and why, or uncertain (src/answers.js).
function render(result, answer) {
  if (answer.label === RETAKE) showAnswer(`${RETAKE}: ${answer.retake}`, "unsure", "");
  else if (answer.label === UNCERTAIN) showAnswer(UNCERTAIN, "unsure", `${(answer.probability * 100).toFixed(0)}%`);
  else showAnswer(displayName(answer.label), "sure", `${(answer.probability * 100).toFixed(0)}%`);
  const now = performance.now();
  state.frames = [...state.frames.filter((t) => now - t < 2000), now];
  $("fps").textContent = `${(state.frames.length / 2).toFixed(1)} FPS, ${result.frameMs.toFixed(1)} ms a frame`;
}

async function startCamera() {
  stopCamera();
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: state.facing }, audio: false });
  } catch (error) {
    const denied = error && (error.name === "NotAllowedError" || error.name === "SecurityError");
    showError(denied
      ? "The camera was denied: allow this page to use the camera (site settings), then reload."
      : `No camera could be opened (${error && error.name ? error.name : error}).`);
    return false;
  }
  $("video").srcObject = state.stream;
  await $("video").play();
  state.running = true;
  state.loopId += 1; // a restarted camera starts one new loop; the old one ends at its next frame
  nextFrame(state.loopId);
  return true;
}

// One frame in flight, and only frames the camera has not given before: the next is asked for
// when this one is shown, and requestVideoFrameCallback calls back on a new camera frame (a
// screen refresh without one costs nothing). Browsers without it fall back to the next paint.
function nextFrame(id) {
  const video = $("video");
  if (video.requestVideoFrameCallback) {
    video.requestVideoFrameCallback((now, metadata) => {
      state.presented = metadata.presentedFrames;
      loop(id);
    });
  } else {
    requestAnimationFrame(() => loop(id));
  }
}

function stopCamera() {
  state.running = false;
  if (state.stream) for (const track of state.stream.getTracks()) track.stop();
  state.stream = null;
}

// The frame's own time, from taking the camera's pixels to the answer on screen: frameMs.
async function loop(id) {
  if (!state.running || id !== state.loopId) return;
  try {
    await classifyFrame();
  } catch (error) {
    showError(`A camera frame could not be classified (${error.message || error}).`); // the next one may
  }
  nextFrame(id);
}

// The camera's current frame drawn on `canvas` at the video's own size (the pixels as they
// come), classified by the model in use: {loaded, result}.
async function classifyVideo(canvas) {
  const video = $("video");
  if (canvas.width !== video.videoWidth || canvas.height !== video.videoHeight) {
    [canvas.width, canvas.height] = [video.videoWidth, video.videoHeight];
  }
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(video, 0, 0);
  const loaded = state.current;
  const result = await classifyWith(loaded, context.getImageData(0, 0, canvas.width, canvas.height).data, canvas.width, canvas.height);
  return { loaded, result };
}

// A classification -> what the page says (src/answers.js), at the threshold the user set.
function answerOf(result, loaded, smoother = null) {
  return decide(result.probabilities, loaded.labels, { retake: result.retake, threshold: Number($("threshold").value), smoother });
}

async function classifyFrame() {
  if (!state.model || !state.trusted || !$("video").videoWidth) return;
  const started = performance.now();
  const { loaded, result } = await classifyVideo($("frame"));
  if (loaded !== state.current || !state.trusted) return; // the model changed while this frame ran: not shown
  result.frameMs = performance.now() - started;
  state.classified += 1;
  const answer = answerOf(result, loaded, state.smoother);
  render(result, answer);
  state.lastAnswer = answer;
  window.hhLast = { ...result, answer };
  if ($("collect").checked && state.collector.wants(answer, performance.now())) await keepFrame(UNSURE, answer.top, answer);
}

// Photo mode, as field apps are used: one photo at the camera's full resolution (ImageCapture
// where the browser has it, else the video frame), one answer, kept in the survey log with the
// position when the user allows it. Live frames are a preview; only these are diagnoses.
async function diagnose() {
  if (!state.model) {
    showError("Load a model first (Load model), then point the camera at a leaf.");
    return null;
  }
  if (!state.trusted || state.diagnosing) return null; // refused or being checked (the page says so), or busy
  if (!state.stream) {
    showError("No camera is open: allow this page to use the camera (site settings), then reload.");
    return null;
  }
  state.diagnosing = true; // one at a time: a second tap while this one runs adds nothing
  $("diagnose").disabled = true;
  $("verdict").textContent = "diagnosing...";
  try {
    return await diagnoseOnce(state.current);
  } finally {
    state.diagnosing = false;
    $("diagnose").disabled = false;
  }
}

async function diagnoseOnce(loaded) {
  const [track] = state.stream.getVideoTracks();
  let bitmap = null;
  if (globalThis.ImageCapture) {
    bitmap = await new ImageCapture(track).takePhoto().then((blob) => createImageBitmap(blob)).catch(() => null);
  }
  bitmap ??= await createImageBitmap($("video"));
  const taken = new Date(); // the photo's time, not the position's
  const located = position(); // asked while the model runs
  const result = await classifyWith(loaded, pixelsOf(bitmap), bitmap.width, bitmap.height);
  const answer = answerOf(result, loaded);
  const place = await located;
  if (loaded !== state.current || !state.trusted) { // another model was loaded meanwhile: its answer is not kept
    $("verdict").textContent = "";
    showError("The model changed during the diagnosis: nothing was saved. Tap Diagnose again.");
    return null;
  }
  const model = { identity: loaded.identity, run: loaded.spec.run?.id ?? null, labels: loaded.labels };
  // Each photo is the current plant's next leaf (a new plant starts after MAX_LEAVES).
  if (state.plant.leaves.length >= MAX_LEAVES) newPlant();
  const leaf = { plant: state.plant.number, leaf: state.plant.leaves.length + 1 };
  const record = diagnosisRecord(answer, model, place, taken, leaf);
  $("verdict").textContent = answer.label === RETAKE ? `${RETAKE}: ${answer.retake}` : displayName(answer.label);
  if (!state.log) {
    showError(state.logProblem);
  } else {
    try {
      await addRecord(state.log, record);
    } catch (error) {
      showError(error instanceof StoreFull ? error.message : `The diagnosis was not saved (${error.message || error}).`);
      return null;
    }
  }
  state.plant.leaves.push(leafOf(record));
  showPlant();
  await showLog();
  return { ...record, width: bitmap.width, height: bitmap.height };
}

// A logged diagnosis as one leaf of its plant (src/plant.js).
function leafOf(record) {
  return { name: `leaf ${record.leaf}`, label: record.label === UNCERTAIN ? record.top : record.label,
    probabilities: Object.values(record.probabilities), retake: record.retake };
}

function newPlant() {
  state.plant = { number: state.plant.number + 1, leaves: [] };
  try {
    localStorage.setItem("hh-plant", String(state.plant.number)); // a plant with no leaf yet survives a reload too
  } catch {
    // storage refused (a private window): the number restarts from the log's
  }
  showPlant();
}

// The plant's verdict so far, from its leaves, in the words of hh-predict --plant.
function showPlant() {
  const { number, leaves } = state.plant;
  $("plant").textContent = leaves.length
    ? `plant ${number}: ${verdictLine(plantVerdict(leaves, state.labels)).replace(/^plant: /, "")}`
    : `plant ${number}: no leaf yet (Diagnose adds one)`;
}

// After a reload: the last plant goes on, its leaves read back from the log.
function resumePlant(records) {
  let started = 0;
  try {
    started = Number(localStorage.getItem("hh-plant")) || 0;
  } catch {
    // no localStorage: the log alone says
  }
  const last = Math.max(1, started, records.reduce((n, r) => Math.max(n, r.plant ?? 0), 0));
  state.plant = { number: last, leaves: records.filter((r) => r.plant === last).map(leafOf) };
}

// The position with its accuracy, or null when the user did not allow it (or it takes too long).
function position() {
  if (!navigator.geolocation) return Promise.resolve(null);
  return new Promise((resolve) => navigator.geolocation.getCurrentPosition(
    (p) => resolve({ latitude: p.coords.latitude, longitude: p.coords.longitude, accuracy: p.coords.accuracy }),
    () => resolve(null),
    // A fresh fix: walking from plant to plant, a minute-old one is the previous plant's place.
    { enableHighAccuracy: true, timeout: 10000, maximumAge: 0 },
  ));
}

async function showLog() {
  const records = state.log ? await allRecords(state.log) : [];
  $("log-count").textContent = String(records.length);
  $("history").replaceChildren(...records.slice(-50).reverse().map((r) => {
    const item = document.createElement("li");
    const located = Number.isFinite(r.latitude) && Number.isFinite(r.longitude);
    const within = Number.isFinite(r.accuracy_m) ? ` (±${Math.round(r.accuracy_m)} m)` : "";
    const place = located ? `${r.latitude.toFixed(5)}, ${r.longitude.toFixed(5)}${within}` : "no position";
    const sure = Number.isFinite(r.probability) ? `${(r.probability * 100).toFixed(0)}%` : "";
    item.textContent = `${String(r.time).slice(0, 16).replace("T", " ")}  ${r.label}  ${sure}  ${place}`;
    return item;
  }));
  return records;
}

// The whole log as a file the user keeps: CSV (a spreadsheet) or GeoJSON (a map).
async function exportLog(kind) {
  if (!state.log) {
    showError(state.logProblem);
    return null;
  }
  const records = await allRecords(state.log);
  const [text, type] = kind === "csv" ? [toCsv(records), "text/csv"] : [toGeoJson(records), "application/geo+json"];
  download(new Blob([text], { type }), `hh-survey-${new Date().toISOString().slice(0, 10)}.${kind === "csv" ? "csv" : "geojson"}`);
  return text;
}

// The phone's download of a file the page made (into its Downloads, where a share sheet finds it).
function download(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

// Keep a frame (a canvas of the camera's own pixels, full size) and its answer, by the model
// `loaded`, in the collection.
async function keepFrame(kind, label, answer, canvas = $("frame"), loaded = state.current) {
  if (!state.log || !plainLabel(label)) return false;
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
  if (!blob) return false;
  const data = new Uint8Array(await blob.arrayBuffer());
  if (!state.collector.admit(data.length)) {
    showCollection(state.collector.stopped);
    return false;
  }
  const time = new Date();
  const record = {
    time: time.getTime(), kind, file: framePath(kind, label, time, answer.probability), predicted: answer.top,
    label: kind === LABELLED ? label : "", probability: answer.probability, model: loaded.identity ?? "",
    probabilities: Object.fromEntries(loaded.labels.map((name, i) => [name, answer.probabilities[i]])), data, bytes: data.length,
  };
  try {
    await addRecord(state.log, record, FRAMES);
  } catch (error) {
    showError(error instanceof StoreFull ? error.message : `The frame was not kept (${error.message || error}).`);
    return false;
  }
  state.collector.saved(data.length, kind, performance.now());
  state.kept[kind] += 1;
  showCollection();
  return true;
}

// One tap: "this frame is <label>". The frame on screen now is filed, answered on its own: its
// journal row is about these very pixels.
async function fileFrameAs(label) {
  if (!state.log) {
    showError(state.logProblem);
    return false;
  }
  const video = $("video");
  if (!state.lastAnswer || !video.videoWidth || !state.trusted) {
    showError("No camera frame yet: point the camera at the leaf, then tap its class.");
    return false;
  }
  const canvas = document.createElement("canvas");
  const { loaded, result } = await classifyVideo(canvas);
  if (loaded !== state.current) return false; // another model meanwhile: tap again
  return keepFrame(LABELLED, label, answerOf(result, loaded), canvas, loaded);
}

// The collection's size from what this page counted (state.kept, state.collector): reading the
// stored frames back, JPEGs and all, at every kept frame would read up to the whole bound.
function showCollection(note = "") {
  $("collect-status").textContent = `${state.kept[LABELLED]} labelled, ${state.kept[UNSURE]} unsure, `
    + `${(state.collector.usedBytes / 1e6).toFixed(1)} MB` + (note ? `; ${note}` : "");
}

// The label buttons, one per class the model names (not "unknown": it is no training folder's class).
function showLabelButtons() {
  $("label-buttons").replaceChildren(...state.labels.filter((l) => l !== UNKNOWN && plainLabel(l)).map((label) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = displayName(label);
    button.dataset.label = label;
    button.addEventListener("click", () => fileFrameAs(label).catch((error) => showError(`Not filed: ${error.message || error}`)));
    return button;
  }));
}

async function exportCollection() {
  if (!state.log) {
    showError(state.logProblem);
    return null;
  }
  const frames = await allRecords(state.log, FRAMES);
  const classes = [...new Set(frames.flatMap((f) => Object.keys(f.probabilities)))];
  download(new Blob([collectionZip(frames, classes)], { type: "application/zip" }), `hh-collection-${new Date().toISOString().slice(0, 10)}.zip`);
  return frames.length;
}

async function clearCollection() {
  if (!state.log) return;
  if (!confirm("Delete every collected frame from this phone? Export the collection first.")) return;
  await clearRecords(state.log, FRAMES);
  state.collector = new Collector();
  state.kept = { [LABELLED]: 0, [UNSURE]: 0 };
  showCollection();
}

async function loadFromFile(file) {
  try {
    await loadModel(await file.arrayBuffer(), file.name);
    if (!state.running && !state.refused) await startCamera(); // a refused model diagnoses nothing
  } catch (error) {
    showError(error instanceof ModelFileError ? `${file.name}: ${error.message}` : `${file.name}: ${error.message || error}`);
  }
}

async function main() {
  $("model-file").addEventListener("change", (event) => event.target.files[0] && loadFromFile(event.target.files[0]));
  $("switch").addEventListener("click", () => {
    state.facing = state.facing === "environment" ? "user" : "environment";
    startCamera();
  });
  $("threshold").addEventListener("input", () => { $("threshold-value").textContent = $("threshold").value; });
  $("smooth").addEventListener("change", () => { state.smoother = new Smoother(Number($("smooth").value)); });
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("sw.js").catch(() => {});
  $("diagnose").addEventListener("click", () => diagnose().catch((error) => showError(`No diagnosis: ${error.message || error}`)));
  $("show-log").addEventListener("click", () => { $("log").hidden = !$("log").hidden; });
  const failed = (what) => (error) => showError(`${what} failed: ${error.message || error}`);
  $("export-csv").addEventListener("click", () => exportLog("csv").catch(failed("The export")));
  $("export-geojson").addEventListener("click", () => exportLog("geojson").catch(failed("The export")));
  $("export-collection").addEventListener("click", () => exportCollection().catch(failed("The export")));
  $("clear-collection").addEventListener("click", () => clearCollection().catch(failed("Clearing")));
  $("new-plant").addEventListener("click", () => newPlant());
  try {
    state.log = await openLog();
    resumePlant(await showLog());
    const frames = await allRecords(state.log, FRAMES); // once, at start: what earlier visits kept
    state.collector = new Collector({ usedBytes: frames.reduce((n, f) => n + f.bytes, 0) });
    state.kept = { [LABELLED]: frames.filter((f) => f.kind === LABELLED).length, [UNSURE]: frames.filter((f) => f.kind === UNSURE).length };
    showCollection();
  } catch (error) {
    state.logProblem = `The survey log cannot be opened on this browser (${error.message || error}): `
      + "diagnoses and collected frames are not kept.";
    showError("");
  }
  // A model built into the page (make web MODEL=...) loads at once; otherwise the user picks one.
  try {
    const response = await fetch("model.tflite");
    if (response.ok) {
      await loadModel(await response.arrayBuffer(), "model.tflite");
      if (!state.refused) await startCamera();
    }
  } catch (error) {
    showError(`model.tflite: ${error.message || error}`);
  }
  window.hhReady = true;
}

window.hh = { loadModel, classifyRgba, classifyImageUrl, fitToSpec, readModelFile, state, diagnose, exportLog, showLog,
  fileFrameAs, exportCollection };
main();
