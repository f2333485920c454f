// The survey log's records and exports, pure (the IndexedDB store is src/store.js): one record
// per diagnosis, kept on the phone; exported as CSV (a spreadsheet) and GeoJSON (a disease map
// that QGIS, geojson.io or any web map opens).

// One diagnosis as it is stored. answer: from src/answers.js decide(); model: {identity, run,
// labels}; position: a GeolocationPosition's coords, or null when the user did not allow it;
// leaf: {plant, leaf}, the plant it is a leaf of and its number there (src/plant.js).
export function diagnosisRecord(answer, model, position, time = new Date(), leaf = { plant: null, leaf: null }) {
  return {
    time: time.toISOString(),
    plant: leaf.plant,
    leaf: leaf.leaf,
    model: model.identity ?? null,
    run: model.run ?? null,
    label: answer.label,
    top: answer.top,
    probability: answer.probability,
    probabilities: Object.fromEntries(model.labels.map((label, i) => [label, answer.probabilities[i]])),
    retake: answer.retake ?? null,
    latitude: position ? position.latitude : null,
    longitude: position ? position.longitude : null,
    accuracy_m: position ? position.accuracy : null,
  };
}

const FIXED = ["time", "plant", "leaf", "model", "run", "label", "top", "probability", "retake", "latitude", "longitude", "accuracy_m"];

// A CSV field: quoted when it holds a separator, a quote or a line break (RFC 4180).
export function csvField(text) {
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function csvCell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return String(Number(value.toFixed(6)));
  // Text a spreadsheet would run as a formula gets a leading apostrophe (OWASP's advice for
  // CSV export: this file is for spreadsheets).
  return csvField(/^[=+\-@\t\r]/.test(String(value)) ? `'${value}` : String(value));
}

// Every record, one row each; a column per class of every model in the log (first seen first).
export function toCsv(records) {
  const classes = [];
  for (const record of records) for (const label of Object.keys(record.probabilities)) if (!classes.includes(label)) classes.push(label);
  const header = [...FIXED, ...classes.map((c) => `p_${c}`)];
  const rows = records.map((r) => [...FIXED.map((k) => r[k]), ...classes.map((c) => r.probabilities[c])].map(csvCell).join(","));
  return [header.map(csvCell).join(","), ...rows].join("\r\n") + "\r\n";
}

// Every record a Feature; one without a position has a null geometry (RFC 7946 allows it), so
// the map file still holds every diagnosis.
export function toGeoJson(records) {
  return JSON.stringify({
    type: "FeatureCollection",
    features: records.map((r) => ({
      type: "Feature",
      geometry: r.latitude === null ? null : { type: "Point", coordinates: [r.longitude, r.latitude] },
      properties: Object.fromEntries(Object.entries(r).filter(([k]) => k !== "latitude" && k !== "longitude")),
    })),
  }, null, 1);
}
