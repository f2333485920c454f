// The survey log's records and exports (src/survey.js): every diagnosis in the CSV and in the
// GeoJSON, positions where the user allowed them, cells a spreadsheet cannot misread.
import assert from "node:assert/strict";
import { test } from "node:test";

import { diagnosisRecord, toCsv, toGeoJson } from "../src/survey.js";

const MODEL = { identity: "e12babbbfba9", run: "run7", labels: ["brown_spot", "healthy", "unknown"] };
const answer = (label, probabilities, retake = null) => ({ label, top: label === "retake" ? "healthy" : label, probability: Math.max(...probabilities), probabilities, retake });

const records = [
  diagnosisRecord(answer("brown_spot", [0.9, 0.08, 0.02]), MODEL, { latitude: -1.2921, longitude: 36.8219, accuracy: 12.5 }, new Date("2026-12-02T08:00:00Z"), { plant: 3, leaf: 1 }),
  diagnosisRecord(answer("retake", [0.2, 0.7, 0.1], "too dark"), MODEL, null, new Date("2026-12-02T08:01:00Z")),
  diagnosisRecord(answer("=cmd", [0.5, 0.4, 0.1]), { ...MODEL, identity: "aa,b", labels: ["brown_spot", "healthy", "=cmd"] },
    { latitude: 0.5, longitude: 30, accuracy: 2000 }, new Date("2026-12-02T08:02:00Z")),
];

test("a record holds the time, the model, the answer, all probabilities and the position", () => {
  const [first, second] = records;
  assert.equal(first.time, "2026-12-02T08:00:00.000Z");
  assert.deepEqual([first.model, first.run, first.label, first.probability], ["e12babbbfba9", "run7", "brown_spot", 0.9]);
  assert.deepEqual(first.probabilities, { brown_spot: 0.9, healthy: 0.08, unknown: 0.02 });
  assert.deepEqual([first.latitude, first.longitude, first.accuracy_m], [-1.2921, 36.8219, 12.5]);
  assert.deepEqual([second.label, second.retake, second.latitude], ["retake", "too dark", null]);
});

test("the CSV has every diagnosis, a column per class of every model, and quotes what a spreadsheet would misread", () => {
  const lines = toCsv(records).trimEnd().split("\r\n");
  assert.equal(lines.length, 4);
  assert.equal(lines[0], "time,plant,leaf,model,run,label,top,probability,retake,latitude,longitude,accuracy_m,p_brown_spot,p_healthy,p_unknown,p_=cmd");
  assert.equal(lines[1], "2026-12-02T08:00:00.000Z,3,1,e12babbbfba9,run7,brown_spot,brown_spot,0.9,,-1.2921,36.8219,12.5,0.9,0.08,0.02,");
  assert.equal(lines[2].split(",")[8], "too dark");
  assert.ok(lines[3].startsWith('2026-12-02T08:02:00.000Z,,,"aa,b",run7,\'=cmd,\'=cmd,0.5,,0.5,30,2000,0.5,0.4,,0.1'), lines[3]);
  assert.equal(toCsv([]), "time,plant,leaf,model,run,label,top,probability,retake,latitude,longitude,accuracy_m\r\n");
});

test("the GeoJSON has every diagnosis as a Feature, lon/lat order, null geometry without a position", () => {
  const map = JSON.parse(toGeoJson(records));
  assert.equal(map.type, "FeatureCollection");
  assert.equal(map.features.length, 3);
  assert.deepEqual(map.features[0].geometry, { type: "Point", coordinates: [36.8219, -1.2921] });
  assert.equal(map.features[1].geometry, null);
  assert.deepEqual(map.features[0].properties.probabilities, { brown_spot: 0.9, healthy: 0.08, unknown: 0.02 });
  assert.equal(map.features[0].properties.accuracy_m, 12.5);
  assert.ok(!("latitude" in map.features[0].properties));
});
