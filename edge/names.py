"""Display names: what a label is called in the languages of the people who read it. stdlib only.

A label is a folder name (`brown_spot`): the key of every record, --json line and collection
folder. A farmer reads "Madoa ya kahawia". hh-convert --names packs a name for each label in
each language into the model, the standard TFLite-metadata way: one `labels_<language>.txt` per
language beside `labels.txt`, a name a line in output order, listed in the model's metadata as
TENSOR_AXIS_LABELS files with that locale (what MediaPipe's `displayNamesLocale` reads). The
device, the live page and the phone show the names of the language asked for (`--lang`, the
browser's languages), the label where there is none.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .files import read_regular_file
from .spec import BIDI_CONTROLS

NAMES_FILE = re.compile(r"labels_(.+)\.txt")
# A BCP 47 tag as people write them: a language (sw, fr, tw, hi, fil), then a script or region
# (pt-BR, zh-Hant, es-419). Enough to match a browser's languages; no registry lookup.
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}")
MAX_NAME_CHARS = 80  # a name is read at arm's length: a phrase, not a paragraph
MAX_TABLE_BYTES = 2_000_000  # 1,000 labels in 20 languages fit many times over
MAX_LANGUAGES = 100  # Nuru, the field's reference app, runs in five
HEADER = ("label", "language", "name")


def language_problem(tag: object) -> str | None:
    """Why `tag` is not a language tag, or None."""
    if not isinstance(tag, str) or not LANGUAGE_TAG.fullmatch(tag):
        return "is not a language tag such as sw, fr, hi or pt-BR"
    return None


def canonical_language(tag: str) -> str:
    """sw, pt-BR, zh-Hant: the case the standard recommends, so that tags compare as text."""
    primary, *rest = tag.split("-")
    parts = [primary.lower()]
    for part in rest:
        parts.append(part.upper() if len(part) == 2 else part.title() if len(part) == 4 else part.lower())
    return "-".join(parts)


def names_filename(language: str) -> str:
    return f"labels_{language}.txt"


def pick_language(available, preferred) -> str | None:
    """The first of the `preferred` languages (best first) that `available` has: the same tag,
    else the same language in another region or script (sw-KE finds sw, pt finds pt-BR)."""
    available = list(available)
    for tag in preferred:
        if not isinstance(tag, str) or language_problem(tag):
            continue
        wanted = canonical_language(tag)
        if wanted in available:
            return wanted
        primary = wanted.split("-")[0]
        for language in available:
            if language.split("-")[0] == primary:
                return language
    return None


def accepted_languages(header: str | None, limit: int = 20) -> list[str]:
    """The languages of an HTTP Accept-Language header, best first (q weights honoured)."""
    ranked = []
    for position, item in enumerate((header or "").split(",")[:limit]):
        tag, _, params = item.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and tag != "*" and 0 < weight <= 1:
            ranked.append((-weight, position, tag.strip()))
    return [tag for _, _, tag in sorted(ranked)]


def window_text(text: str) -> str:
    """`text` as OpenCV's built-in font can draw it (ASCII): accents dropped (Tache brûlée ->
    Tache brulee); the empty string when a letter would be lost (Twi's Ɔ, Devanagari), so that
    the picture shows the label rather than half a name."""
    letters = "".join(c for c in unicodedata.normalize("NFKD", text) if unicodedata.category(c) != "Mn")
    return letters if letters.isascii() and letters.isprintable() else ""


def drawable_names(names: dict[str, str]) -> dict[str, str]:
    """label -> what a picture drawn with OpenCV's font shows for it (names it cannot draw left out)."""
    return {label: text for label, name in names.items() if (text := window_text(name))}


@dataclass(frozen=True)
class DisplayNames:
    """The names of a model's labels: for each language, one name per label, in label order."""

    labels: tuple[str, ...]
    by_language: dict[str, tuple[str, ...]] = field(default_factory=dict)
    damaged: dict[str, str] = field(default_factory=dict)  # language -> what is wrong with its packed file

    @property
    def languages(self) -> list[str]:
        return sorted(self.by_language)

    def of(self, language: str | None) -> dict[str, str]:
        """label -> name in `language` (every label; empty for None or a language without names)."""
        names = self.by_language.get(language or "")
        return dict(zip(self.labels, names, strict=True)) if names else {}

    def name(self, label: str, language: str | None) -> str:
        """What to show for `label`: its name in `language`, else the label."""
        return self.of(language).get(label, label)

    def files(self) -> dict[str, bytes]:
        """The packed files: labels_<language>.txt, a name a line in label order."""
        return {
            names_filename(language): "".join(name + "\n" for name in names).encode("utf-8")
            for language, names in sorted(self.by_language.items())
        }

    def counts(self) -> dict[str, int]:
        """language -> how many labels have a name of their own (not the label repeated)."""
        return {
            language: sum(name != label for name, label in zip(names, self.labels, strict=True))
            for language, names in sorted(self.by_language.items())
        }

    def for_labels(self, labels) -> DisplayNames:
        """The same names for another label list (a converted model with 'unknown' added):
        labels without a name show themselves."""
        labels = tuple(labels)
        by_language = {}
        for language in self.by_language:
            named = self.of(language)
            by_language[language] = tuple(named.get(label, label) for label in labels)
        return DisplayNames(labels, by_language)

    def check_language(self, language: str) -> str:
        """The model's language for a --lang value (sw-KE finds sw), or a UserError naming the ones it has."""
        picked = pick_language(self.by_language, [language])
        broken = pick_language(self.damaged, [language])
        if picked is None and broken is not None:
            raise UserError(f"--lang {language}: the model's names in {broken} are damaged ({self.damaged[broken]})")
        if picked is None:
            has = f"it has names in {', '.join(self.languages)}" if self.by_language else "it carries no display names"
            raise UserError(f"--lang {language}: the model has no names in that language ({has}; hh-convert --names adds them)")
        return picked


def packed_names(files: dict[str, bytes], labels) -> DisplayNames:
    """The display names packed in a model (its associated files). A damaged file leaves its
    language out (noted in `damaged`): names are for reading, the model answers without them."""
    labels = tuple(labels)
    by_language, damaged = {}, {}
    for filename, data in files.items():
        match = NAMES_FILE.fullmatch(filename)
        if not match or language_problem(match.group(1)):
            continue
        language = canonical_language(match.group(1))
        try:
            names = tuple(data.decode("utf-8").split("\n")[: len(labels)])
        except UnicodeDecodeError:
            damaged[language] = f"{filename} is not UTF-8 text"
            continue
        if len(names) != len(labels) or any(name_problem(name) for name in names):
            damaged[language] = f"{filename} does not hold a usable name for each of the {len(labels)} labels"
            continue
        by_language[language] = names
    return DisplayNames(labels, by_language, damaged)


def name_problem(name: str) -> str | None:
    if not name:
        return "is empty"
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        return "holds a control character or a line break (an unclosed quote?)"
    if BIDI_CONTROLS & set(name):
        return "holds a character that reorders the text around it (a bidi override or isolate)"
    if not any(unicodedata.category(c)[0] in "LN" for c in name):
        return "has no letter or digit (an invisible name)"
    if len(name) > MAX_NAME_CHARS:
        return f"is longer than {MAX_NAME_CHARS} characters"
    return None


def _columns(cells: list[str]) -> tuple[int, int, int] | None:
    """Where label, language and name are, when `cells` is a header row naming them (any order)."""
    lowered = [c.lower() for c in cells]
    if sorted(lowered) != sorted(HEADER):
        return None
    return (lowered.index("label"), lowered.index("language"), lowered.index("name"))


def _read_table_text(path: Path) -> str:
    data = read_regular_file(path, "names file", MAX_TABLE_BYTES, folder_hint=" (CSV: label,language,name)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text (save the table as CSV UTF-8)") from None


def read_names_table(path: str | Path, labels) -> tuple[DisplayNames, list[str]]:
    """A table of display names (CSV: label,language,name; a header row optional) for `labels`,
    and notes for the person (a language that names only some labels). A row that cannot be
    used is a UserError naming the file, the line and what is wrong."""
    path = Path(path)
    labels = tuple(labels)
    text = _read_table_text(path)
    names: dict[str, dict[str, str]] = {}
    rows = csv.reader(io.StringIO(text, newline=""))
    order = (0, 1, 2)
    try:
        for rows_read, row in enumerate(rows, start=1):
            line = rows.line_num
            cells = [cell.strip() for cell in row]
            header = _columns(cells) if rows_read == 1 else None
            if header is not None:
                order = header
                continue
            if not any(cells):
                continue
            if len(cells) != 3:
                separator = next((name for sep, name in ((";", "semicolons"), ("\t", "tabs")) if sep in row[0]), None)
                hint = f"; it seems separated by {separator}: save it as CSV with commas" if len(cells) == 1 and separator else ""
                count = "1 column" if len(cells) == 1 else f"{len(cells)} columns"
                raise UserError(f"{path}, line {line}: {count}; each row is label,language,name{hint}")
            label, language, name = (cells[i] for i in order)
            if label not in labels:
                raise UserError(f"{path}, line {line}: {label!r} is not one of the model's labels ({', '.join(labels)})")
            if language_problem(language):
                raise UserError(f"{path}, line {line}: {language!r} {language_problem(language)}")
            if name_problem(name):
                raise UserError(f"{path}, line {line}: name {name!r} {name_problem(name)}")
            language = canonical_language(language)
            if language not in names and len(names) == MAX_LANGUAGES:
                raise UserError(f"{path}, line {line}: more than {MAX_LANGUAGES} languages")
            given = names.setdefault(language, {})
            if given.get(label, name) != name:
                raise UserError(f"{path}, line {line}: {label!r} in {language} is named twice ({given[label]!r}, {name!r})")
            given[label] = name
    except csv.Error as exc:
        raise UserError(f"{path}, line {rows.line_num}: not CSV ({exc})") from None
    if not names:
        raise UserError(f"{path}: no names (rows of label,language,name)")
    notes = [
        f"names in {language}: {len(given)} of {len(labels)} labels (the others show their label)"
        for language, given in sorted(names.items())
        if len(given) < len(labels)
    ]
    by_language = {language: tuple(given.get(label, label) for label in labels) for language, given in names.items()}
    return DisplayNames(labels, by_language), notes
