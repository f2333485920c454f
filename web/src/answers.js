// From a frame's probabilities to what the page says, as hh-camera decides (hh.edge.camera):
//   retake     the quality gate refused the frame (its reason is shown); kept out of smoothing
//   unknown    the model's own answer "none of the classes", whatever its probability
//   uncertain  the top probability is below the threshold
//   a label    otherwise
// with the probabilities averaged over the last K classified frames (hh-camera's --smooth).

import { RETAKE } from "./quality.js";

export const UNCERTAIN = "uncertain";
export const UNKNOWN = "unknown";
export const UNCERTAIN_BELOW = 0.6; // hh.edge.camera.UNCERTAIN_BELOW

// The index of the largest value, the first of equals (numpy's argmax).
export const argmax = (values) => values.reduce((best, v, i) => (v > values[best] ? i : best), 0);

// Mean of the last K probability vectors: steadier labels from a shaky hand-held phone.
export class Smoother {
  constructor(k) {
    this.k = Math.max(1, Math.floor(k) || 1);
    this.window = [];
  }

  add(probabilities) {
    if (this.k === 1) return probabilities;
    this.window = [...this.window.slice(-(this.k - 1)), probabilities];
    return probabilities.map((_, i) => this.window.reduce((sum, p) => sum + p[i], 0) / this.window.length);
  }

  clear() {
    this.window = [];
  }
}

// {label, probability, retake} shown for one frame. probabilities: the model's (raw) ones;
// retake: the quality gate's reason or null; smoother: a Smoother (or null).
export function decide(probabilities, labels, { retake = null, threshold = UNCERTAIN_BELOW, smoother = null } = {}) {
  const used = smoother && !retake ? smoother.add(probabilities) : probabilities;
  const best = argmax(used);
  const top = labels[best];
  let label = top;
  if (retake) label = RETAKE;
  else if (top !== UNKNOWN && used[best] < threshold) label = UNCERTAIN;
  return { label, top, probability: used[best], probabilities: used, retake };
}
