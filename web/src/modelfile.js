// What an hh .tflite carries inside, read as hh.edge.metadata reads it: hh-convert appends the
// labels, the preprocessing spec and the self-test as an uncompressed zip archive to the
// model (the standard TFLite-metadata packing), so the model file is also a zip.

import { packedNames } from "./names.js";

export class ModelFileError extends Error {}

const SPEC_VERSION = 5;
const INTERPOLATIONS = ["bilinear", "nearest", "area"];
const ASPECTS = ["squash", "crop"];
const RESIZES = ["exact", "opencv"];

function u16(view, at) { return view.getUint16(at, true); }
function u32(view, at) { return view.getUint32(at, true); }

// {name: Uint8Array} of the files stored in the zip at the end of `buffer` ({} when none).
export function readAssociatedFiles(buffer) {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  let end = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 65557); i--) {
    if (u32(view, i) === 0x06054b50) { end = i; break; }
  }
  if (end < 0) return Object.create(null);
  const count = u16(view, end + 10);
  const cdSize = u32(view, end + 12);
  const cdOffset = u32(view, end + 16);
  const shift = end - cdSize - cdOffset; // an archive appended to other data: offsets are relative to it
  const files = Object.create(null); // a member named "__proto__" is a name, not the object's prototype
  let at = cdOffset + shift;
  const decoder = new TextDecoder();
  for (let n = 0; n < count; n++) {
    if (u32(view, at) !== 0x02014b50) throw new ModelFileError("the model's packed files are damaged");
    const method = u16(view, at + 10);
    const size = u32(view, at + 20);
    const nameLength = u16(view, at + 28);
    const extra = u16(view, at + 30);
    const comment = u16(view, at + 32);
    const local = u32(view, at + 42) + shift;
    const name = decoder.decode(bytes.subarray(at + 46, at + 46 + nameLength));
    if (method === 0) {
      const start = local + 30 + u16(view, local + 26) + u16(view, local + 28);
      files[name] = bytes.subarray(start, start + size);
    }
    at += 46 + nameLength + extra + comment;
  }
  return files;
}

// The quality gate's thresholds, checked as hh.edge.spec.QualityThresholds checks them.
function usableQuality(q) {
  const keys = ["min_sharpness", "min_brightness", "max_brightness", "min_contrast", "calibrated_on"];
  if (typeof q !== "object" || Array.isArray(q) || Object.keys(q).sort().join() !== [...keys].sort().join()) return false;
  if (!keys.every((k) => typeof q[k] === "number" && Number.isFinite(q[k]))) return false;
  return q.min_sharpness >= 0 && q.min_contrast >= 0 && q.calibrated_on >= 1
    && q.min_brightness >= 0 && q.min_brightness <= q.max_brightness && q.max_brightness <= 255;
}

// The preprocessing spec, checked as hh.edge.spec.PreprocessingSpec checks it.
export function parseSpec(text) {
  let spec;
  try {
    spec = JSON.parse(text);
  } catch {
    throw new ModelFileError("its preprocessing spec is not valid JSON");
  }
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) throw new ModelFileError("its preprocessing spec is not a JSON object");
  const version = spec.version ?? SPEC_VERSION; // as hh.edge.spec reads a spec that names none
  if (version > SPEC_VERSION) throw new ModelFileError(`its spec version ${version} is newer than this page understands (${SPEC_VERSION})`);
  const problems = [];
  if (!Number.isInteger(spec.height) || !Number.isInteger(spec.width) || spec.height < 8 || spec.width < 8) problems.push("image size");
  if (!Array.isArray(spec.class_names) || spec.class_names.length < 2) problems.push("class names");
  if (!INTERPOLATIONS.includes(spec.interpolation ?? "bilinear")) problems.push("interpolation");
  if (!ASPECTS.includes(spec.aspect ?? "squash")) problems.push("aspect");
  if ((spec.color_order ?? "RGB") !== "RGB") problems.push("colour order");
  if (spec.quality !== undefined && spec.quality !== null && !usableQuality(spec.quality)) problems.push("quality thresholds");
  if (problems.length) throw new ModelFileError(`its preprocessing spec is not usable (${problems.join(", ")})`);
  // Versions 1 and 2 were trained with OpenCV's own resize (hh.edge.spec); 3 says which.
  const resize = version < 3 ? "opencv" : spec.resize ?? "exact";
  if (!RESIZES.includes(resize)) throw new ModelFileError("its preprocessing spec is not usable (resize)");
  return { interpolation: "bilinear", aspect: "squash", class_mode: "binary", ...spec, resize };
}

// {spec, labels, buffer} from the bytes of an hh .tflite, or ModelFileError saying what is wrong.
export function readModelFile(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 16 || String.fromCharCode(...bytes.subarray(4, 8)) !== "TFL3") {
    throw new ModelFileError("this is not a TFLite model (no TFL3 identifier)");
  }
  const files = readAssociatedFiles(buffer);
  if (!files["preprocessing.json"]) {
    throw new ModelFileError("this model carries no hh labels and preprocessing spec: convert it with hh-convert");
  }
  const decoder = new TextDecoder();
  const spec = parseSpec(decoder.decode(files["preprocessing.json"]));
  if (files["labels.txt"]) {
    const labels = decoder.decode(files["labels.txt"]).split("\n").map((l) => l.trim()).filter(Boolean);
    if (labels.join("\n") !== spec.class_names.join("\n")) throw new ModelFileError("its labels.txt and spec disagree");
  }
  return { spec, labels: spec.class_names, names: packedNames(files, spec.class_names), buffer };
}
