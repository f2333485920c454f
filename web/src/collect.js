// Field collection on the phone, as hh-camera --collect keeps it on a Pi (hh.edge.collect):
//   unsure/<predicted>/<time>_<probability>.jpg   a frame the model was unsure of (top probability
//                                                 below the threshold, or the label flipped from
//                                                 the previous frame), at most one every 2 s
//   labelled/<class>/<time>.jpg                   a frame someone filed as "this is <class>"
//   collected.csv                                 the journal of both, hh.edge.collect's columns
// Frames the quality gate refused are never kept (a black frame teaches nothing), and the whole
// collection is bounded in size; when full, collecting stops and says so. The export is a zip of
// that layout, which `hh-data merge collection.zip data/train` takes as it is.
// This module is the pure part: what to keep, names, the journal, the zip's entries.

import { csvField } from "./survey.js";
import { makeZip } from "./zip.js";

export const UNSURE = "unsure";
export const LABELLED = "labelled";

export class Collector {
  // threshold: keep frames below this top probability; everyMs: at most one unsure frame per
  // this long; maxBytes: the collection's bound; usedBytes: what is kept already.
  constructor({ threshold = 0.6, everyMs = 2000, maxBytes = 200e6, usedBytes = 0 } = {}) {
    Object.assign(this, { threshold, everyMs, maxBytes, usedBytes });
    this.lastSaved = -Infinity;
    this.lastLabel = null;
    this.stopped = null; // why collecting stopped, once it has
  }

  // Whether an answered frame is one to keep as unsure (hh.edge.collect.FieldCollector.consider).
  wants(answer, now) {
    if (answer.retake) return false;
    const flipped = this.lastLabel !== null && answer.top !== this.lastLabel;
    this.lastLabel = answer.top;
    const unsure = answer.probability < this.threshold || flipped;
    return unsure && this.stopped === null && now - this.lastSaved >= this.everyMs;
  }

  // Room for `bytes` more? Stops the collection (once, with why) when not.
  admit(bytes) {
    if (this.stopped !== null) return false;
    if (this.usedBytes + bytes > this.maxBytes) {
      this.stopped = `the collection reached its limit (${Math.round(this.maxBytes / 1e6)} MB): export it, then clear it`;
      return false;
    }
    return true;
  }

  saved(bytes, kind, now) {
    this.usedBytes += bytes;
    if (kind === UNSURE) this.lastSaved = now;
  }
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

// A label that can be a folder name (hh.edge.spec.label_problem's rule): a crafted model's
// label must never become a path.
export function plainLabel(label) {
  return typeof label === "string" && label.length > 0 && label === label.trim() && !label.startsWith(".")
    && !/[/\\]/.test(label) && !Array.from(label).some((c) => c.charCodeAt(0) < 32 || c.charCodeAt(0) === 127);
}

// The file's path in the collection, as hh.edge.collect names it: local time to the millisecond.
export function framePath(kind, label, time, probability) {
  if (!plainLabel(label)) throw new Error(`the label ${JSON.stringify(label)} cannot be a folder name`);
  const stamp = `${time.getFullYear()}${pad(time.getMonth() + 1)}${pad(time.getDate())}-`
    + `${pad(time.getHours())}${pad(time.getMinutes())}${pad(time.getSeconds())}-${pad(time.getMilliseconds(), 3)}`;
  return kind === UNSURE ? `${UNSURE}/${label}/${stamp}_${probability.toFixed(2)}.jpg` : `${LABELLED}/${label}/${stamp}.jpg`;
}

// collected.csv: hh.edge.collect's columns (time, kind, file, predicted, label, probability, a
// column per class, source, model). frames: the stored records, each with its `file` path.
export function journal(frames, classNames) {
  const header = ["time", "kind", "file", "predicted", "label", "probability", ...classNames, "source", "model"];
  const rows = frames.map((f) => [
    (f.time / 1000).toFixed(3), f.kind, f.file, f.predicted, f.label, f.probability.toFixed(5),
    ...classNames.map((c) => (f.probabilities[c] ?? 0).toFixed(5)), "phone camera", f.model ?? "",
  ]);
  // For hh-data merge and Python's csv, not a spreadsheet: values as they are.
  return [header, ...rows].map((row) => row.map((value) => csvField(String(value ?? ""))).join(",")).join("\n") + "\n";
}

// The collection as a zip: every frame at its path, a name taken twice made unique (two taps in
// the same millisecond), and the journal. frames: [{file, data (Uint8Array), time (ms), ...}].
export function collectionZip(frames, classNames) {
  const taken = new Set();
  const unique = frames.map((f) => {
    let file = f.file;
    for (let n = 1; taken.has(file); n++) file = f.file.replace(/\.jpg$/, `-${n}.jpg`);
    taken.add(file);
    return { ...f, file };
  });
  const entries = unique.map((f) => ({ name: f.file, data: f.data, time: new Date(f.time) }));
  entries.push({ name: "collected.csv", data: new TextEncoder().encode(journal(unique, classNames)), time: new Date() });
  return makeZip(entries);
}
