"""Which model said this, and a safe update in place: identity in every output, a running
hh-camera taking a good replacement between two frames and refusing one that fails here."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from makers import repack
from test_live import class_video, free_port
from test_selftest import shift_raw

from hh.edge.errors import SpecError
from hh.edge.spec import PreprocessingSpec, RunInfo


def test_a_spec_names_its_training_run_and_refuses_a_malformed_one():
    base = json.loads(PreprocessingSpec(32, 32, ("a", "b")).to_json())
    assert "run" not in base  # a spec made outside a run names none
    spec = PreprocessingSpec.from_json(json.dumps({**base, "run": {"id": "run1", "started": "2026-12-02T03:00:00Z"}}))
    assert spec.run == RunInfo("run1", "2026-12-02T03:00:00Z")
    for run in ({"id": "run1"}, {"id": "", "started": "2026-12-02T03:00:00Z"}, {"id": "r", "started": "yesterday"}):
        with pytest.raises(SpecError, match="run"):
            PreprocessingSpec.from_json(json.dumps({**base, "run": run}))
    with pytest.raises(SpecError, match="unknown field"):  # a version 4 spec had no run
        PreprocessingSpec.from_json(json.dumps({**base, "version": 4, "run": {"id": "r", "started": "2026-12-02T03:00:00Z"}}))


def test_the_run_and_its_models_carry_the_runs_name_and_start(trained_run, int8_model):
    from hh.edge.runtime import Classifier
    from hh.edge.spec import read_spec

    run = read_spec(trained_run / "preprocessing.json").run
    assert run is not None and run.id == trained_run.name and run.started.startswith(time.strftime("%Y-"))
    classifier = Classifier(int8_model)
    assert classifier.spec.run == run
    assert classifier.model_id == {"id": classifier.identity, "run": run.id, "trained": run.started}
    assert len(classifier.identity) == 12 and classifier.identity_line().startswith(f"model {classifier.identity} (run ")
    report = json.loads((int8_model.parent / "model_int8.report.json").read_text())  # hh-convert names it too
    assert report["identity"] == classifier.identity and report["run"] == run.as_dict()


def test_hh_predict_names_the_model_in_every_output(int8_model, synth_data, tmp_path):
    from hh.edge.runtime import Classifier

    identity = Classifier(int8_model).identity
    base = [sys.executable, "-m", "hh.edge.cli_predict", str(int8_model)]
    text = subprocess.run([*base, str(synth_data / "validation" / "healthy")], capture_output=True, text=True, timeout=120)
    assert text.returncode == 0 and f"model {identity} (run " in text.stderr, text.stderr
    as_json = subprocess.run(
        [*base, str(synth_data / "validation"), "--json", "--report", str(tmp_path / "report")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    objects = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert {o["model"] for o in objects if o["type"] == "image"} == {identity}
    assert objects[-1]["type"] == "summary" and objects[-1]["model"]["id"] == identity
    assert json.loads((tmp_path / "report" / "evaluation.json").read_text())["model"]["id"] == identity
    selftest = subprocess.run([*base, "--selftest", "--json"], capture_output=True, text=True, timeout=120)
    assert json.loads(selftest.stdout)["model"]["id"] == identity


class LiveCamera:
    """hh-camera --json in its own process on a looping video, its lines collected as they come."""

    def __init__(self, model: Path, *args):
        command = [sys.executable, "-m", "hh.edge.cli_camera", str(model), "--json", *map(str, args)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: list[dict] = []
        self.log: list[str] = []
        threading.Thread(target=lambda: self.events.extend(json.loads(line) for line in self.process.stdout), daemon=True).start()
        threading.Thread(target=lambda: self.log.extend(self.process.stderr), daemon=True).start()

    def wait_for(self, test, seconds: float = 60.0) -> dict:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for event in list(self.events):
                if test(event):
                    return event
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"not seen in {seconds}s; log: {''.join(self.log[-8:])}")

    def frames(self) -> list[dict]:
        return [e for e in list(self.events) if e["type"] == "frame"]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        time.sleep(0.2)  # the reader threads drain the pipes
        return code


def replace_file(source: Path, target: Path) -> None:
    """What rsync and scp do: write beside, then rename over."""
    temporary = target.with_name(f".{target.name}.part")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def test_hh_camera_takes_a_good_model_between_two_frames_and_refuses_a_bad_one(converted_run, synth_data, tmp_path):
    from hh.edge.runtime import Classifier

    run, _ = converted_run
    model = tmp_path / "model.tflite"
    shutil.copyfile(run / "model_int8.tflite", model)
    first = Classifier(model).identity
    good = run / "model_float16.tflite"  # the same labels, another file, its own self-test
    second = Classifier(good).identity
    failing = repack(run / "model_int8.tflite", tmp_path, shift_raw(2))  # its self-test fails on any device
    failing_id = Classifier(failing).identity
    video, _ = class_video(synth_data, tmp_path / "field.avi", per_image=3)
    record = tmp_path / "field.csv"
    port = free_port()
    camera = LiveCamera(model, "--source", video, "--loop", "--realtime", "--record", record, "--serve", port)
    try:
        camera.wait_for(lambda e: e["type"] == "frame" and e["model"] == first)
        selftest = camera.wait_for(lambda e: e["type"] == "selftest")
        # The running model's own file overwritten in place (scp, cp): the running model is in
        # memory, not mapped from the file, so it goes on; the garbage is refused.
        with open(model, "r+b") as handle:
            handle.truncate(0)
            handle.write(b"not a model" * 100)
        junk = camera.wait_for(lambda e: e["type"] == "model" and e["action"] == "refused")
        # A self-test that fails here: refused, and the running model goes on answering.
        replace_file(failing, model)
        refused = camera.wait_for(lambda e: e["type"] == "model" and e.get("candidate") == failing_id)
        seen = len(camera.frames())
        camera.wait_for(lambda e: e["type"] == "frame" and camera.frames().index(e) > seen + 5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10) as response:
            status_refused = json.loads(response.read())
        # A model that passes: switched to between two frames.
        replace_file(good, model)
        switched = camera.wait_for(lambda e: e["type"] == "model" and e["action"] == "switched")
        camera.wait_for(lambda e: e["type"] == "frame" and e["model"] == second)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10) as response:
            status_switched = json.loads(response.read())
        # SIGHUP (systemctl reload) looks at once and does not end the process.
        camera.process.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert camera.process.poll() is None
    finally:
        code = camera.stop()
    assert code == 0, "".join(camera.log)
    assert selftest["model"]["id"] == first and selftest["passed"]
    assert refused["running"] == first and refused["action"] == "refused" and "self-test" in refused["reason"], refused
    assert junk["running"] == first and "not a TFLite model" in junk["reason"], junk
    assert status_refused["model"]["id"] == first and status_refused["model_update"]["action"] == "refused"
    assert switched["from"]["id"] == first and switched["to"]["id"] == second and switched["selftest"]["passed"]
    assert status_switched["model"]["id"] == second and status_switched["model"]["selftest"]["passed"]
    # Not a frame lost at the switch: the video's frames go on one by one, the model changing between two.
    frames = camera.frames()
    models = [f["model"] for f in frames]
    at = models.index(second)
    assert set(models[:at]) == {first} and set(models[at:]) == {second}
    numbers = [f["frame"] for f in frames[at - 3 : at + 3]]
    assert numbers == list(range(numbers[0], numbers[0] + 6)), numbers
    assert [e for e in camera.events if e["type"] == "summary"][0]["model"]["id"] == second
    assert any("the same model" in line for line in camera.log), camera.log[-5:]
    # The record notes the switch: each row names the model that gave it.
    rows = list(csv.DictReader(record.open()))
    assert {r["model"] for r in rows} == {first, second}


# -- signed models ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two key pairs made by hh-data keygen: the field's, and a stranger's."""
    from typer.testing import CliRunner

    from hh.trainer.cli_data import app

    folder = tmp_path_factory.mktemp("keys")
    for name in ("field", "stranger"):
        result = CliRunner().invoke(app, ["keygen", str(folder / name)])
        assert result.exit_code == 0, result.output
    return folder


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_replaces_one(keys, cli, one_line_error):
    from hh.trainer.cli_data import app

    assert (keys / "field.key").stat().st_mode & 0o777 == 0o600
    assert b"PUBLIC KEY" in (keys / "field.pub").read_bytes() and b"PRIVATE KEY" in (keys / "field.key").read_bytes()
    before = (keys / "field.key").read_bytes()
    one_line_error(cli(app, "keygen", keys / "field"), "exists: a key is never replaced")
    assert (keys / "field.key").read_bytes() == before


def test_a_signed_model_runs_where_its_key_is_trusted_and_nothing_else_does(
    trained_run, int8_model, keys, synth_data, tmp_path, cli, one_line_error
):
    from hh.converters.cli import app as convert_app
    from hh.edge.cli_camera import app as camera_app
    from hh.edge.cli_predict import app as predict_app

    signed = tmp_path / "signed.tflite"
    converted = cli(convert_app, trained_run, "--float16", "--sign", keys / "field.key", "--out", signed)
    assert converted.exit_code == 0, converted.output
    assert "signed with key " in converted.output
    # Still a model every reader takes: its self-test passes, its packed files read.
    assert cli(predict_app, signed, "--selftest").exit_code == 0
    video, _ = class_video(synth_data, tmp_path / "field.avi", per_image=1)

    def camera(model, key="field.pub"):
        return cli(camera_app, model, "--source", video, "--headless", "--max-frames", 2, "--trust", keys / key)

    assert camera(signed).exit_code == 0
    one_line_error(camera(int8_model), "not signed, and this device runs signed models only")
    one_line_error(camera(signed, "stranger.pub"), "signed with another key")
    altered = bytearray(signed.read_bytes())
    altered[len(altered) // 3] ^= 0x01  # one bit of the network's weights
    (tmp_path / "altered.tflite").write_bytes(bytes(altered))
    one_line_error(camera(tmp_path / "altered.tflite"), "its signature does not match its bytes: the file was altered")
    relabelled = signed.read_bytes().replace(b"healthy\n", b"Healthy\n")  # a packed file edited in place
    (tmp_path / "relabelled.tflite").write_bytes(relabelled)
    one_line_error(camera(tmp_path / "relabelled.tflite"), "altered after signing")
    # The halves of a key pair mixed up: said so, nothing converted.
    one_line_error(camera(signed, "field.key"), "not a public key")
    out = tmp_path / "never.tflite"
    one_line_error(cli(convert_app, trained_run, "--sign", keys / "field.pub", "--out", out), "not a private key")
    assert not out.exists()


def test_a_model_the_gates_refuse_is_never_signed(trained_run, keys, synth_data, tmp_path, cli, one_line_error):
    """--sign signs what passes: a refused model, kept for inspection, carries no signature a
    device would trust (it was signed, and ran under --trust without a word)."""
    from hh.converters.cli import app as convert_app
    from hh.edge.cli_camera import app as camera_app

    out = tmp_path / "m.tflite"
    refused = cli(convert_app, trained_run, "--int8", "--max-prob-diff", "0.0001", "--sign", keys / "field.key", "--out", out)
    assert refused.exit_code == 1, refused.output
    rejected = tmp_path / "m.rejected.tflite"
    assert rejected.exists() and not out.exists() and "signed with key" not in refused.output
    assert json.loads((tmp_path / "m.rejected.report.json").read_text())["signed_with"] is None
    video, _ = class_video(synth_data, tmp_path / "field.avi", per_image=1)
    camera = cli(camera_app, rejected, "--source", video, "--headless", "--max-frames", 2, "--trust", keys / "field.pub")
    one_line_error(camera, "not signed, and this device runs signed models only")


def test_a_running_camera_that_trusts_a_key_refuses_an_unsigned_replacement(converted_run, keys, synth_data, tmp_path):
    from hh.edge.runtime import Classifier
    from hh.edge.trust import load_private_key, sign_model

    run, _ = converted_run
    key = load_private_key(keys / "field.key")
    model = tmp_path / "model.tflite"
    model.write_bytes(sign_model((run / "model_int8.tflite").read_bytes(), key))
    signed_float16 = tmp_path / "float16.tflite"
    signed_float16.write_bytes(sign_model((run / "model_float16.tflite").read_bytes(), key))
    video, _ = class_video(synth_data, tmp_path / "field.avi", per_image=3)
    camera = LiveCamera(model, "--source", video, "--loop", "--realtime", "--trust", keys / "field.pub")
    try:
        camera.wait_for(lambda e: e["type"] == "frame")
        replace_file(run / "model_float16.tflite", model)  # a good model, but unsigned
        refused = camera.wait_for(lambda e: e["type"] == "model" and e["action"] == "refused")
        replace_file(signed_float16, model)
        switched = camera.wait_for(lambda e: e["type"] == "model" and e["action"] == "switched")
    finally:
        assert camera.stop() == 0
    assert "not signed" in refused["reason"], refused
    assert switched["to"]["id"] == Classifier(signed_float16).identity


# -- what a careless or hostile operator puts at the paths ------------------------------------


def test_only_a_regular_model_file_of_a_sane_size_is_read(tmp_path):
    from hh.edge.errors import ModelFileError
    from hh.edge.metadata import read_model_bytes

    os.mkfifo(tmp_path / "fifo.tflite")  # nothing writes to it: it must not be opened and waited on
    (tmp_path / "zero.tflite").symlink_to("/dev/zero")
    for path, why in (
        (tmp_path / "fifo.tflite", "not a model file (a device or a pipe)"),
        (tmp_path / "zero.tflite", "not a model file (a device or a pipe)"),
        (tmp_path, "is a folder"),
        (tmp_path / "none.tflite", "no such model file"),
    ):
        with pytest.raises(ModelFileError, match=re.escape(why)):
            read_model_bytes(path)


def signed_blob(key) -> bytes:
    """A model-shaped file (a model part, then packed files), signed."""
    import io
    import zipfile

    from hh.edge.trust import sign_model

    out = io.BytesIO()
    out.write(b"\0\0\0\0TFL3" + bytes(100))
    with zipfile.ZipFile(out, "a") as archive:
        archive.writestr("labels.txt", "a\nb\n")
    return sign_model(out.getvalue(), key)


def test_a_signature_says_how_a_file_differs_from_what_was_signed(tmp_path, caplog):
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from hh.edge.errors import ModelFileError
    from hh.edge.trust import check_signature, key_id, sign_model

    key = ed25519.Ed25519PrivateKey.generate()
    model = signed_blob(key)
    assert check_signature("m", model, key.public_key()) == key_id(key.public_key())
    named = key_id(key.public_key()).encode()
    cases = {
        model + b"\0": "altered after signing (bytes added or removed at its end)",
        model[:-2] + b"xx": "its signature does not match its bytes",
        model.replace(named + b" ", named + b"_"): "its signature is damaged",  # the same length, one field
        model.replace(b"a\nb\n", b"b\na\n"): "its signature does not match its bytes",
    }
    for changed, why in cases.items():
        with pytest.raises(ModelFileError, match=re.escape(why)):
            check_signature("m", changed, key.public_key())
    with pytest.raises(ModelFileError, match="signed with another key"):
        check_signature("m", model, ed25519.Ed25519PrivateKey.generate().public_key())
    with pytest.raises(ValueError, match="signed already"):
        sign_model(model, key)


def test_keygen_takes_a_name_not_a_folder_and_writes_through_no_link(tmp_path, cli, one_line_error, caplog):
    from hh.edge.trust import load_private_key
    from hh.trainer.cli_data import app

    done = cli(app, "keygen", tmp_path / "ka.key")  # the pair named ka, not ka.key.key
    assert done.exit_code == 0 and (tmp_path / "ka.key").exists() and (tmp_path / "ka.pub").exists(), done.output
    one_line_error(cli(app, "keygen", f"{tmp_path}/"), "give the key pair a file name")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "kb.pub").symlink_to(tmp_path / "elsewhere" / "target.pub")  # dangling
    one_line_error(cli(app, "keygen", tmp_path / "kb"), "exists: a key is never replaced")
    assert not (tmp_path / "kb.key").exists() and not (tmp_path / "elsewhere" / "target.pub").exists()
    (tmp_path / "ka.key").chmod(0o644)
    with caplog.at_level("WARNING", logger="hh"):
        load_private_key(tmp_path / "ka.key")
    assert "can be read by others than you" in caplog.text


def test_a_swapped_model_prints_its_own_names_and_one_without_the_language_is_refused(trained_run, synth_data, tmp_path, cli):
    """hh-camera --lang sw: the printed lines name classes as the running model does, after a
    swap too (they kept the first model's names); a replacement with no Swahili names is refused,
    as it would be at start."""
    from hh.converters.cli import app as convert_app

    models = {}
    for key, table in (
        ("first", "label,language,name\nhealthy,sw,Mzima\nbrown_spot,sw,Madoa\n"),
        ("second", "label,language,name\nhealthy,sw,Afya njema\nbrown_spot,sw,Madoa ya kahawia\n"),
        ("french", "label,language,name\nhealthy,fr,Saine\nbrown_spot,fr,Tache\n"),
    ):
        (tmp_path / f"{key}.csv").write_text(table, encoding="utf-8")
        models[key] = tmp_path / f"{key}.tflite"
        done = cli(convert_app, trained_run, "--float16", "--names", tmp_path / f"{key}.csv", "--out", models[key])
        assert done.exit_code == 0, done.output
    model = tmp_path / "model.tflite"
    shutil.copyfile(models["first"], model)
    video, _ = class_video(synth_data, tmp_path / "field.avi", per_image=3)
    command = [sys.executable, "-m", "hh.edge.cli_camera", str(model), "--source", str(video), "--loop", "--realtime"]
    process = subprocess.Popen(
        [*command, "--headless", "--lang", "sw"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()

    def wait_for(found, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found():
                return
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.1)
        raise AssertionError(f"not seen in time; last lines {lines[-3:]}")

    try:
        wait_for(lambda: any("Mzima" in line or "Madoa" in line for line in lines))
        replace_file(models["french"], model)
        time.sleep(3)  # the watch looks every second
        replace_file(models["second"], model)
        wait_for(lambda: any("Afya njema" in line or "Madoa ya kahawia" in line for line in lines))
        assert process.poll() is None
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "model update refused: the model has no names in that language" in stderr, stderr
    switched = len([line for line in lines if "Afya njema" in line or "Madoa ya kahawia" in line])
    assert switched and not any("Saine" in line or "Tache" in line for line in lines)


def test_keygen_makes_a_keys_folder_of_its_own_on_a_new_machine(tmp_path, cli, one_line_error):
    """hh-data keygen ~/.hh/field, as the README says, where ~/.hh does not exist yet."""
    from hh.trainer.cli_data import app

    home = tmp_path / "home"
    home.mkdir()
    done = cli(app, "keygen", home / ".hh" / "keys" / "field")
    assert done.exit_code == 0, done.output
    assert (home / ".hh" / "keys" / "field.key").exists() and (home / ".hh" / "keys" / "field.pub").exists()
    assert (home / ".hh" / "keys").stat().st_mode & 0o777 == 0o700
    (tmp_path / "a_file").write_text("x")
    one_line_error(cli(app, "keygen", tmp_path / "a_file" / "field"), "cannot make the folder for the keys")


def test_a_key_file_with_two_keys_is_refused(keys, tmp_path):
    """PEM readers take the first block: a --trust file of two keys trusted one of them silently."""
    from hh.edge.errors import UserError
    from hh.edge.trust import load_private_key, load_public_key

    both = tmp_path / "both.pub"
    both.write_bytes((keys / "stranger.pub").read_bytes() + (keys / "field.pub").read_bytes())
    with pytest.raises(UserError, match="holds 2 keys; give a file with one public key"):
        load_public_key(both)
    two_private = tmp_path / "two.key"
    two_private.write_bytes((keys / "field.key").read_bytes() * 2)
    two_private.chmod(0o600)
    with pytest.raises(UserError, match="holds 2 keys; give a file with one private key"):
        load_private_key(two_private)
    load_public_key(keys / "field.pub")  # one key: taken
