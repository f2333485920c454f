// One verdict per plant from several of its leaves, as hh.edge.plant gives it: agronomists judge a
// plant from several leaves (a cassava field trial's accuracy rose from 65% to 74-88% with six
// leaves a plant). The leaves' probabilities over the model's classes are averaged, each leaf's
// taken among the classes alone (a soft vote); leaves answered retake or unknown say nothing
// about the disease and are left out, with why.

import { argmax, UNKNOWN } from "./answers.js";

export const MAX_LEAVES = 50; // hh.edge.plant.MAX_LEAVES

// leaves: [{name, label, probabilities (the model's order), retake}] -> the verdict.
export function plantVerdict(leaves, labels) {
  const classes = labels.map((name, i) => [name, i]).filter(([name]) => name !== UNKNOWN);
  const used = [];
  const leftOut = [];
  const rows = [];
  for (const leaf of leaves) {
    if (leaf.retake) leftOut.push([leaf.name, `retake: ${leaf.retake}`]);
    else if (leaf.label === UNKNOWN) leftOut.push([leaf.name, "unknown"]);
    else {
      const p = classes.map(([, i]) => leaf.probabilities[i]);
      const total = p.reduce((a, b) => a + b, 0);
      rows.push(total > 0 ? p.map((v) => v / total) : p.map(() => 1 / classes.length));
      used.push(leaf.name);
    }
  }
  if (!rows.length) return { label: UNKNOWN, probability: 0, probabilities: {}, votes: {}, used, leftOut };
  const mean = classes.map((_, c) => rows.reduce((sum, row) => sum + row[c], 0) / rows.length);
  const best = argmax(mean);
  const votes = Object.fromEntries(classes.map(([name]) => [name, 0]));
  for (const row of rows) votes[classes[argmax(row)][0]] += 1;
  return {
    label: classes[best][0], probability: mean[best],
    probabilities: Object.fromEntries(classes.map(([name], c) => [name, mean[c]])), votes, used, leftOut,
  };
}

// The verdict in one line, as hh.edge.plant.PlantVerdict.line words it.
export function verdictLine(verdict) {
  if (!verdict.used.length) {
    return `plant: unknown (no usable leaf of ${verdict.leftOut.length}; retake them or photograph other leaves)`;
  }
  const votes = Object.entries(verdict.votes).filter(([, n]) => n).map(([name, n]) => `${name} ${n}`).join(", ");
  const left = verdict.leftOut.length ? `; left out ${verdict.leftOut.length} (${verdict.leftOut.map(([, why]) => why).join(", ")})` : "";
  const leaves = verdict.used.length === 1 ? "leaf" : "leaves";
  return `plant: ${verdict.label} ${verdict.probability.toFixed(3)} from ${verdict.used.length} ${leaves} (${votes})${left}`;
}
