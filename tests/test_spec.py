import json
from dataclasses import replace

import pytest

from hh.edge.spec import SPEC_VERSION, PreprocessingSpec, QualityThresholds, SpecError, center_crop_box, parse_labels


def make_spec(**overrides):
    fields = dict(height=64, width=48, class_names=("a", "b"), class_mode="binary")
    fields.update(overrides)
    return PreprocessingSpec(**fields)


def test_json_round_trip_keeps_every_field():
    spec = make_spec(class_names=("x", "y", "z"), class_mode="categorical", aspect="crop", interpolation="area")
    assert PreprocessingSpec.from_json(spec.to_json()) == spec
    gated = spec.with_quality(QualityThresholds(12.5, 20.0, 240.0, 8.0, 300))
    assert PreprocessingSpec.from_json(gated.to_json()) == gated


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_spec_still_reads_with_the_resize_its_model_was_trained_with(version):
    data = json.loads(make_spec().to_json())
    assert data["version"] == SPEC_VERSION and data["resize"] == "exact"
    data["version"] = version
    del data["resize"]
    spec = PreprocessingSpec.from_json(json.dumps(data))
    assert spec.resize == "opencv" and spec.quality is None
    # Written again, it says so in the current format, and reads back the same.
    again = PreprocessingSpec.from_json(spec.to_json())
    assert json.loads(spec.to_json())["version"] == SPEC_VERSION and again == replace(spec, version=SPEC_VERSION)


def test_a_spec_refuses_an_unknown_resize_and_a_resize_field_in_an_older_version():
    data = json.loads(make_spec().to_json())
    with pytest.raises(SpecError, match="resize 'cubic' is not one of exact, opencv"):
        PreprocessingSpec.from_json(json.dumps({**data, "resize": "cubic"}))
    with pytest.raises(SpecError, match="unknown field"):
        PreprocessingSpec.from_json(json.dumps({**data, "version": 2}))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(interpolation="cubic"), "interpolation"),
        (dict(aspect="pad"), "aspect"),
        (dict(class_names=("a", "b", "c")), "binary class mode needs exactly 2"),
        (dict(class_names=("a",), class_mode="categorical"), "at least 2 classes"),
        (dict(class_names=("a", "a")), "not unique"),
        (dict(color_order="BGR"), "colour order"),
        (dict(height=4), "too small"),
    ],
)
def test_invalid_specs_are_refused(overrides, message):
    with pytest.raises(SpecError, match=message):
        make_spec(**overrides)


def test_from_json_names_missing_fields():
    with pytest.raises(SpecError, match="missing field.*height"):
        PreprocessingSpec.from_json('{"width": 3, "class_names": ["a", "b"]}')
    with pytest.raises(SpecError, match="not valid JSON"):
        PreprocessingSpec.from_json("{")


def test_center_crop_box_keeps_target_aspect_and_centres():
    # Landscape 480x640 to a square: crop a centred 480x480.
    assert center_crop_box(480, 640, 300, 300) == (0, 80, 480, 480)
    # Portrait 640x480 to a square.
    assert center_crop_box(640, 480, 96, 96) == (80, 0, 480, 480)
    # Square to 2:1 (h:w = 1:2).
    assert center_crop_box(100, 100, 50, 100) == (25, 0, 50, 100)


def test_labels_text_round_trip():
    spec = make_spec(class_names=("healthy", "brown spot"))
    assert parse_labels(spec.labels_text()) == spec.class_names


def test_a_newer_spec_version_is_refused_not_misread():
    data = json.loads(make_spec().to_json())
    data["version"] = SPEC_VERSION + 1
    with pytest.raises(SpecError, match=f"spec version {SPEC_VERSION + 1} is newer than this hh understands"):
        PreprocessingSpec.from_json(json.dumps(data))


def test_unknown_fields_are_refused_not_dropped():
    data = json.loads(make_spec().to_json())
    data["mean"] = [0.5, 0.5, 0.5]
    with pytest.raises(SpecError, match="unknown field.*mean"):
        PreprocessingSpec.from_json(json.dumps(data))


@pytest.mark.parametrize("name", ["brown\nspot", "tab\there", " padded"])
def test_class_names_that_cannot_be_label_lines_are_refused(name):
    with pytest.raises(SpecError, match="class name"):
        make_spec(class_names=("ok", name))


def test_a_spec_nested_beyond_reason_is_a_spec_error():
    with pytest.raises(SpecError, match="not a spec"):
        PreprocessingSpec.from_json("[" * 100_000 + "]" * 100_000)


def test_a_number_too_long_to_read_is_a_spec_error():
    data = json.loads(make_spec().to_json())
    text = json.dumps(data).replace('"height": 64', '"height": ' + "6" * 5000)
    with pytest.raises(SpecError, match="too long"):
        PreprocessingSpec.from_json(text)
