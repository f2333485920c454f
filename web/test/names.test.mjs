// The display-name rules of src/names.js, the same as hh.edge.names (tests/test_names.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import { canonicalLanguage, namesFor, packedNames, pickLanguage } from "../src/names.js";

const LABELS = ["brown_spot", "healthy", "unknown"];
const bytes = (text) => new TextEncoder().encode(text);

test("a language tag is compared in the standard's case", () => {
  assert.equal(canonicalLanguage("SW-ke"), "sw-KE");
  assert.equal(canonicalLanguage("zh-hant-tw"), "zh-Hant-TW");
  assert.equal(canonicalLanguage("es-419"), "es-419");
});

test("the reader's language picks the names: the same tag first, then the same language", () => {
  const available = ["fr", "pt-BR", "sw"];
  assert.equal(pickLanguage(available, ["sw-KE", "en"]), "sw");
  assert.equal(pickLanguage(available, ["en-US", "pt"]), "pt-BR");
  assert.equal(pickLanguage(available, ["FR-fr"]), "fr");
  assert.equal(pickLanguage(available, ["en", "*", "", "not a tag", 7]), null);
});

test("packed names read per language; a damaged file leaves its language out", () => {
  const files = {
    "labels.txt": bytes("brown_spot\nhealthy\nunknown\n"),
    "labels_sw.txt": bytes("Madoa ya kahawia\nMzima\nSi jani\n"),
    "labels_de.txt": bytes("Braunfleck\n"), // too few names
    "labels_fr.txt": Uint8Array.of(0xff, 0xfe, 10, 10, 10), // not UTF-8
    "labels_not a tag.txt": bytes("a\nb\nc\n"),
  };
  assert.deepEqual(packedNames(files, LABELS), { sw: ["Madoa ya kahawia", "Mzima", "Si jani"] });
});

test("namesFor maps each label to its name in the first language the model has", () => {
  const byLanguage = { sw: ["Madoa ya kahawia", "Mzima", "Si jani"] };
  const { language, names } = namesFor(byLanguage, LABELS, ["en-GB", "sw-TZ"]);
  assert.equal(language, "sw");
  assert.equal(names.get("healthy"), "Mzima");
  assert.deepEqual(namesFor(byLanguage, LABELS, ["en"]), { language: null, names: new Map() });
});
