"""Display names in the field's languages: hh-convert --names packs them, devices show them."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import FIELD_NAMES_CSV

from hh.edge.errors import UserError
from hh.edge.names import (
    DisplayNames,
    accepted_languages,
    packed_names,
    pick_language,
    read_names_table,
    window_text,
)

LABELS = ("brown_spot", "healthy", "unknown")


def table(tmp_path, text: str, labels=LABELS, encoding="utf-8"):
    path = tmp_path / "names.csv"
    path.write_bytes(text.encode(encoding))
    return read_names_table(path, labels)


def test_a_names_table_gives_every_label_a_name_in_each_language(tmp_path):
    names, notes = table(tmp_path, FIELD_NAMES_CSV)
    assert names.languages == ["fr", "hi", "sw"]
    assert names.of("sw") == {"brown_spot": "Madoa ya kahawia", "healthy": "Mzima", "unknown": "Si jani"}
    # French names no 'unknown': it shows its label, and the person is told.
    assert names.name("unknown", "fr") == "unknown" and names.name("healthy", "fr") == "Saine"
    assert notes == ["names in fr: 2 of 3 labels (the others show their label)"]
    assert names.counts() == {"fr": 2, "hi": 3, "sw": 3}
    assert names.of(None) == {} and names.name("healthy", None) == "healthy"


def test_a_spreadsheets_csv_reads_as_written(tmp_path):
    # Excel's "CSV UTF-8" starts with a byte-order mark, quotes a name with a comma; no header; any tag case.
    names, _ = table(tmp_path, '\ufeffhealthy,SW-ke,Mzima\r\nbrown_spot,sw-KE,"Madoa, kahawia"\r\n\r\n', LABELS[:2])
    assert names.of("sw-KE") == {"healthy": "Mzima", "brown_spot": "Madoa, kahawia"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "label,language,name\nmosaic,sw,Batobato\n",
            "line 2: 'mosaic' is not one of the model's labels (brown_spot, healthy, unknown)",
        ),
        ("healthy,swahili,Mzima\n", "line 1: 'swahili' is not a language tag such as sw, fr, hi or pt-BR"),
        ("healthy,sw\n", "line 1: 2 columns; each row is label,language,name"),
        ("healthy,sw,Mzima\nhealthy,sw,Afya\n", "line 2: 'healthy' in sw is named twice ('Mzima', 'Afya')"),
        (
            "label;language;name\nhealthy;sw;Mzima\n",
            "line 1: 1 column; each row is label,language,name; it seems separated by semicolons",
        ),
        ("healthy,sw,\u200b\u200b\n", "has no letter or digit (an invisible name)"),
        ("healthy,ar,\u202eMzima\n", "reorders the text around it"),
        ("".join(f"healthy,x{i:02d},n\n".replace("x", "zz-x") for i in range(101)), "more than 100 languages"),
        ("healthy,sw,\n", "line 1: name '' is empty"),
        ('healthy,sw,"Mzi\nma"\n', "line 2: name 'Mzi\\nma' holds a control character or a line break"),
        ("healthy,sw," + "a" * 81 + "\n", "is longer than 80 characters"),
        ("label,language,name\n", "no names (rows of label,language,name)"),
    ],
)
def test_a_names_table_that_cannot_be_used_says_where_and_why(tmp_path, text, fragment):
    with pytest.raises(UserError) as refused:
        table(tmp_path, text)
    assert fragment in str(refused.value) and str(tmp_path / "names.csv") in str(refused.value)


def test_a_header_in_any_order_says_which_column_is_which(tmp_path):
    names, _ = table(tmp_path, "name,label,language\nMzima,healthy,sw\n")
    assert names.of("sw")["healthy"] == "Mzima"


def test_a_names_file_that_is_not_utf8_text_or_not_a_file_is_refused(tmp_path):
    with pytest.raises(UserError, match="not UTF-8 text"):
        table(tmp_path, "healthy,fr,Saine brûlée\n", encoding="latin-1")
    with pytest.raises(UserError, match="is a folder, not a names file"):
        read_names_table(tmp_path, LABELS)
    with pytest.raises(UserError, match="no such names file"):
        read_names_table(tmp_path / "missing.csv", LABELS)
    with pytest.raises(UserError, match="not a names file .a device or a pipe."):
        read_names_table("/dev/zero", LABELS)
    os.mkfifo(tmp_path / "fifo.csv")  # nothing writes to it: it must not be opened and waited on
    with pytest.raises(UserError, match="not a names file"):
        read_names_table(tmp_path / "fifo.csv", LABELS)
    (tmp_path / "big.csv").write_bytes(b"healthy,sw,Mzima\n" * 200_000)
    with pytest.raises(UserError, match="more than a names file may be .2 MB at most."):
        read_names_table(tmp_path / "big.csv", LABELS)


def test_the_readers_language_picks_the_names_the_same_tag_first_then_the_same_language():
    available = ["fr", "pt-BR", "sw"]
    assert pick_language(available, ["sw-KE", "en"]) == "sw"
    assert pick_language(available, ["en-US", "pt"]) == "pt-BR"
    assert pick_language(available, ["FR-fr"]) == "fr"
    assert pick_language(available, ["en", "*", "", "not a tag"]) is None
    # An HTTP Accept-Language header: best first by weight, '*' and junk ignored.
    assert accepted_languages("en-US,en;q=0.5, sw;q=0.9, *;q=0.1, fr;q=abc") == ["en-US", "sw", "en"]
    assert accepted_languages(None) == [] and accepted_languages("x" * 5000) == ["x" * 5000]
    assert pick_language(available, accepted_languages("x" * 5000 + ",sw")) == "sw"


def test_a_window_drawn_with_opencvs_font_gets_latin_letters_or_nothing():
    assert window_text("Tache brûlée") == "Tache brulee"
    assert window_text("Mzima") == "Mzima"
    assert window_text("भूरा धब्बा") == ""  # another script: the window shows the label
    assert window_text("Ɔkwan") == ""  # Twi's open o has no Latin twin: no name rather than a wrong one


def test_packed_names_round_trip_and_a_damaged_file_is_refused():
    names = DisplayNames(LABELS, {"sw": ("Madoa ya kahawia", "Mzima", "Si jani")})
    files = names.files()
    assert set(files) == {"labels_sw.txt"}
    assert packed_names({**files, "labels.txt": b"x", "labels_not a tag.txt": b"x"}, LABELS) == names
    # A damaged file leaves its language out; the model still answers, and --lang says why.
    damaged = packed_names({**files, "labels_de.txt": b"Mzima\n", "labels_fr.txt": b"\xff\xfe\n\n\n"}, LABELS)
    assert damaged.languages == ["sw"] and set(damaged.damaged) == {"de", "fr"}
    with pytest.raises(UserError, match="names in de are damaged .labels_de.txt does not hold a usable name"):
        damaged.check_language("de-AT")
    # Names for a model with 'unknown' added: the label shows itself where no name was given.
    two = DisplayNames(LABELS[:2], {"fr": ("Tache brune", "Saine")})
    assert two.for_labels(LABELS).of("fr")["unknown"] == "unknown"


# -- in the converted model, on the device ----------------------------------------------------


def test_the_int8_model_carries_its_names_the_standard_way(int8_model):
    from hh.converters.metadata import read_model_metadata
    from hh.edge.metadata import read_associated_files
    from hh.edge.runtime import Classifier

    classifier = Classifier(int8_model)
    assert classifier.class_names == LABELS
    assert classifier.display_names.of("sw") == {"brown_spot": "Madoa ya kahawia", "healthy": "Mzima", "unknown": "Si jani"}
    assert "names in fr, hi, sw" in classifier.describe()
    files = read_associated_files(int8_model)
    assert files["labels_hi.txt"].decode() == "भूरा धब्बा\nस्वस्थ\nपत्ता नहीं\n"
    assert files["labels.txt"].decode() == "brown_spot\nhealthy\nunknown\n"  # the labels are still the key
    metadata = read_model_metadata(int8_model.read_bytes())
    for language in ("fr", "hi", "sw"):  # each a labels file of the output, with its locale
        assert f"labels_{language}.txt".encode() in metadata and f"Display names ({language})".encode() in metadata
    report = json.loads((int8_model.parent / "model_int8.report.json").read_text())
    assert report["names"] == {"fr": 2, "hi": 3, "sw": 3}


def test_hh_convert_refuses_a_names_table_before_any_work(trained_run, tmp_path, cli, one_line_error):
    from hh.converters.cli import app

    names = tmp_path / "names.csv"
    names.write_text("label,language,name\nmosaic,sw,Batobato\n")
    out = tmp_path / "model.tflite"
    result = cli(app, trained_run, "--int8", "--names", names, "--out", out)
    one_line_error(result, "'mosaic' is not one of the model's labels (brown_spot, healthy, unknown)")
    assert not out.exists() and not list(tmp_path.glob("*.tflite"))


def test_hh_camera_prints_names_in_lang_and_json_keeps_the_label(int8_model, synth_data, tmp_path):
    import subprocess

    from test_live import class_video

    video, _ = class_video(synth_data, tmp_path / "field.avi", per_image=2)
    base = [sys.executable, "-m", "hh.edge.cli_camera", str(int8_model), "--source", str(video), "--threshold", "0"]
    printed = subprocess.run([*base, "--headless", "--lang", "sw-KE"], capture_output=True, text=True, timeout=120)
    assert printed.returncode == 0, printed.stderr
    shown = {line.split()[2] for line in printed.stdout.splitlines() if line.startswith("frame")}
    assert shown and shown <= {"Mzima", "Madoa", "Si"}, shown  # first words of the Swahili names
    assert "names in fr, hi, sw" in printed.stderr
    as_json = subprocess.run([*base, "--json", "--lang", "sw"], capture_output=True, text=True, timeout=120)
    labels = {json.loads(line)["label"] for line in as_json.stdout.splitlines() if '"frame"' in line}
    assert labels and labels <= set(LABELS), labels


def test_hh_camera_refuses_a_language_the_model_has_no_names_in(
    int8_model, converted_run, synth_data, tmp_path, cli, one_line_error
):
    from test_live import class_video

    from hh.edge.cli_camera import app

    video, _ = class_video(synth_data, tmp_path / "field.avi", per_image=1)
    result = cli(app, int8_model, "--source", video, "--headless", "--lang", "ta")
    one_line_error(result, "--lang ta: the model has no names in that language (it has names in fr, hi, sw;")
    for odd in ("sw_KE", ""):
        one_line_error(cli(app, int8_model, "--source", video, "--lang", odd), f"--lang {odd!r} is not a language tag")
    run, _ = converted_run
    result = cli(app, run / "model_float32.tflite", "--source", video, "--headless", "--lang", "sw")
    one_line_error(result, "--lang sw: the model has no names in that language (it carries no display names;")


def test_the_live_view_names_labels_in_the_browsers_language_then_in_lang(int8_model, synth_data, tmp_path):
    from test_live import Camera, class_video, free_port

    video, _ = class_video(synth_data, tmp_path / "field.avi", per_image=2)
    camera = Camera(int8_model, "--source", video, "--loop", "--serve", free_port(), "--lang", "fr")

    def status(accept_language: str | None) -> dict:
        headers = {"Accept-Language": accept_language} if accept_language else {}
        base, _, query = camera.url.partition("?")
        url = base + "api/status" + (f"?{query}" if query else "")
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return json.loads(response.read())

    try:
        swahili = status("sw-KE,sw;q=0.9,en;q=0.8")
        english = status("en-GB,en;q=0.9")
        hindi = status("hi")
        plain = status(None)
    finally:
        assert camera.stop() == 0
    assert swahili["language"] == "sw" and swahili["names"]["healthy"] == "Mzima"
    # No names in English: hh-camera's --lang, French; its 'unknown' shows the label.
    assert english["language"] == plain["language"] == "fr" and english["names"]["unknown"] == "unknown"
    assert hindi["names"]["brown_spot"] == "भूरा धब्बा"
    assert swahili["labels"] == list(LABELS)  # the labels stay the key


def test_the_live_page_shows_the_names_in_the_browsers_language(int8_model, synth_data, tmp_path):
    from test_live import CHROMIUM, Camera, class_video, free_port
    from test_web import BROWSER_FLAGS

    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium: .ci/run installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    video, _ = class_video(synth_data, tmp_path / "field.avi", per_image=4)
    camera = Camera(int8_model, "--source", video, "--loop", "--serve", free_port(), "--collect", tmp_path / "kept")
    swahili = {"Madoa ya kahawia", "Mzima", "Si jani"}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_FLAGS)
            page = browser.new_page(locale="sw-KE")
            page.goto(camera.url)
            page.wait_for_function("document.querySelectorAll('#collect button').length === 3", timeout=30_000)
            buttons = [b.inner_text() for b in page.locator("#collect button").all()]
            shown = set()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not shown & swahili:
                shown.add(page.inner_text("#label"))
                time.sleep(0.2)
            page.locator("#collect button").first.click()  # files the frame under its label, not its name
            page.wait_for_function("document.getElementById('saved').textContent.startsWith('saved as')")
            saved = page.inner_text("#saved")
            browser.close()
    finally:
        assert camera.stop() == 0
    assert buttons == ["This is Madoa ya kahawia", "This is Mzima", "This is Si jani"], buttons
    assert shown & swahili and not shown & set(LABELS), shown
    assert saved.startswith("saved as Madoa ya kahawia:"), saved
    assert list((tmp_path / "kept" / "labelled" / "brown_spot").glob("*.jpg"))
