// Display names: a label's name in the reader's language, as hh.edge.names picks it. hh-convert
// --names packs labels_<language>.txt files (a name a line, in label order) into the model.

const LANGUAGE_TAG = /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$/;
const NAMES_FILE = /^labels_(.+)\.txt$/;

// sw, pt-BR, zh-Hant: the case the standard recommends, so that tags compare as text.
export function canonicalLanguage(tag) {
  const [primary, ...rest] = tag.split("-");
  const parts = rest.map((part) => {
    if (part.length === 2) return part.toUpperCase();
    if (part.length === 4) return part[0].toUpperCase() + part.slice(1).toLowerCase();
    return part.toLowerCase();
  });
  return [primary.toLowerCase(), ...parts].join("-");
}

// The first of the preferred languages (best first) that `available` has: the same tag, else
// the same language in another region or script (sw-KE finds sw, pt finds pt-BR); or null.
export function pickLanguage(available, preferred) {
  for (const tag of preferred) {
    if (typeof tag !== "string" || !LANGUAGE_TAG.test(tag)) continue;
    const wanted = canonicalLanguage(tag);
    if (available.includes(wanted)) return wanted;
    const primary = wanted.split("-")[0];
    const same = available.find((language) => language.split("-")[0] === primary);
    if (same) return same;
  }
  return null;
}

// {language: [name per label]} from a model's packed files. A damaged file leaves its language
// out, as hh.edge.names.packed_names does: names are for reading, the model answers without them.
export function packedNames(files, labels) {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const byLanguage = {};
  for (const [file, bytes] of Object.entries(files)) {
    const match = NAMES_FILE.exec(file);
    if (!match || !LANGUAGE_TAG.test(match[1])) continue;
    let names;
    try {
      names = decoder.decode(bytes).split("\n").slice(0, labels.length);
    } catch {
      continue; // not UTF-8 text
    }
    if (names.length !== labels.length || names.some((name) => !name.trim())) continue;
    byLanguage[canonicalLanguage(match[1])] = names;
  }
  return byLanguage;
}

// label -> name in the first of the preferred languages the model has names in ({} when none).
export function namesFor(byLanguage, labels, preferred) {
  const language = pickLanguage(Object.keys(byLanguage).sort(), preferred);
  if (!language) return { language: null, names: new Map() };
  return { language, names: new Map(labels.map((label, i) => [label, byLanguage[language][i]])) };
}
