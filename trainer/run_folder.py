"""A run folder: its layout, and every read and write of it. stdlib only (no TensorFlow), so
the converter, the benchmarks and a Python caller can read a run without the training loop.

    model.keras          the best epoch by validation loss (a hard link to its checkpoint file)
    labels.txt           one class name per line, index order
    preprocessing.json   the PreprocessingSpec (hh.edge.spec)
    run.json             configuration, data counts, progress and outcome
    split.json           every training and validation file, recorded once (hh.trainer.split)
    history.csv          per-epoch loss and accuracy, training and validation
    curves.png           the same, plotted
    bad_files.txt        files the pre-training scan skipped, with the reason
    normalized/          upright RGB copies of pictures OpenCV cannot read (PCX, ...)
    checkpoint/          the committed training state, for --resume
    checkpoint/worker-N/ everything an extra worker of a multi-worker run writes: its lock, split,
                         checkpoint, model inputs and normalized copies. The chief (worker 0)
                         alone checks and fills the folder; the others write only here, so
                         which worker starts first changes nothing.

Crash safety rests on one rule: `checkpoint/state.json` is the commit. An epoch first writes
its model file under a new name, then commits state.json (atomically), which names the last
and the best epoch files and holds the history. Everything else (model.keras, history.csv,
run.json) is published from the committed state afterwards. Each epoch file carries its own
epoch number inside (an `hh_epoch.json` entry in the .keras zip, which Keras ignores), so
model.keras always says which epoch it is, even copied to another machine. A kill at any point
leaves either the previous commit or the new one; a model.keras and run.json that disagree
about the best epoch are detected (`stale_publication`) and rebuilt from the commit.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import math
import os
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..edge.errors import ParameterError, UserError
from ..edge.files import (
    atomic_link_or_copy,
    atomic_path,
    atomic_write_text,
    check_not_inside,
    check_output_dir,
    remove_stale_temp_files,
)
from ..edge.spec import LABELS_FILENAME, SPEC_FILENAME, PreprocessingSpec, RunInfo, read_spec
from .config import TrainConfig
from .run_record import RunRecord
from .split import RecordedSplit

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class CheckpointState:
    """The committed state of a training run (checkpoint/state.json)."""

    epochs_done: int = 0
    best_epoch: int = 0
    best_val_loss: float = math.inf
    last_file: str | None = None  # in the checkpoint folder: the last completed epoch, with optimizer state
    best_file: str | None = None  # the best epoch so far (the same file when the last is the best)
    history: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})

    def to_json(self) -> str:
        data = asdict(self)
        data["best_val_loss"] = None if math.isinf(self.best_val_loss) else self.best_val_loss
        return json.dumps(data, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CheckpointState:
        data = json.loads(text)
        state = cls(**data)
        state.best_val_loss = math.inf if data["best_val_loss"] is None else float(data["best_val_loss"])
        if state.epochs_done < 0 or any(len(v) != state.epochs_done for v in state.history.values()):
            raise ValueError("history does not match epochs_done")
        if state.epochs_done and not (state.last_file and state.best_file):
            raise ValueError("no model files named")
        return state


def history_csv(history: dict[str, list[float]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("epoch", *HISTORY_KEYS))
    for i in range(len(history["loss"])):
        writer.writerow((i + 1, *(f"{history[key][i]:.6f}" for key in HISTORY_KEYS)))
    return out.getvalue()


EPOCH_ENTRY = "hh_epoch.json"


def mark_epoch(model_file: Path, epoch: int) -> None:
    """Write the epoch number into a saved .keras file (a zip; Keras ignores the entry)."""
    with zipfile.ZipFile(model_file, "a") as archive:
        archive.writestr(EPOCH_ENTRY, json.dumps({"epoch": epoch}))


def model_epoch(model_file: Path) -> int | None:
    """The epoch a .keras file was saved at by hh-train, or None (not marked, or unreadable)."""
    try:
        with zipfile.ZipFile(model_file) as archive:
            return int(json.loads(archive.read(EPOCH_ENTRY))["epoch"])
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile):
        return None


class RunFolder:
    """One run folder on disk. All paths are absolute."""

    MODEL = "model.keras"
    RECORD = "run.json"
    SPLIT = "split.json"
    HISTORY = "history.csv"
    CURVES = "curves.png"
    BAD_FILES = "bad_files.txt"
    NORMALIZED = "normalized"
    INPUTS = "inputs"  # model inputs on disk when they are more than the RAM budget (removed once complete)
    CHECKPOINT = "checkpoint"
    STATE = "state.json"

    def __init__(self, path: str | Path, worker: int = 0):
        self.path = Path(path).expanduser().absolute()
        self.worker = worker  # whose model inputs and normalized copies (own_dir) this is

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})" if not self.worker else f"RunFolder({str(self.path)!r}, worker={self.worker})"

    def own_dir(self, worker: int | None = None) -> Path:
        """Where a worker keeps what is its own: the run folder for the chief, checkpoint/worker-N/
        for any other (nothing of an extra worker's lies anywhere else in the run folder)."""
        worker = self.worker if worker is None else worker
        return self.path if worker == 0 else self.checkpoint_dir(worker)

    # -- layout --------------------------------------------------------------------------
    @property
    def model_path(self) -> Path:
        return self.path / self.MODEL

    @property
    def record_path(self) -> Path:
        return self.path / self.RECORD

    @property
    def spec_path(self) -> Path:
        return self.path / SPEC_FILENAME

    @property
    def labels_path(self) -> Path:
        return self.path / LABELS_FILENAME

    @property
    def history_path(self) -> Path:
        return self.path / self.HISTORY

    @property
    def curves_path(self) -> Path:
        return self.path / self.CURVES

    @property
    def bad_files_path(self) -> Path:
        return self.path / self.BAD_FILES

    @property
    def normalized_dir(self) -> Path:
        return self.own_dir() / self.NORMALIZED

    @property
    def inputs_dir(self) -> Path:
        return self.own_dir() / self.INPUTS

    def checkpoint_dir(self, worker: int = 0) -> Path:
        """Worker 0 (the chief) uses checkpoint/; every other worker checkpoint/worker-N/."""
        base = self.path / self.CHECKPOINT
        return base if worker == 0 else base / f"worker-{worker}"

    def split_path(self, worker: int = 0) -> Path:
        return self.path / self.SPLIT if worker == 0 else self.checkpoint_dir(worker) / self.SPLIT

    # -- what is there ---------------------------------------------------------------------
    def is_run(self) -> bool:
        return self.record_path.is_file()

    def check_new(self, config: TrainConfig, worker: int = 0) -> None:
        """Refuse to start a fresh run here: an existing run, a user's folder with other
        files in it, a folder inside the data, or a place that cannot be written."""
        data = (
            ("training folder", config.data_dir),
            ("validation folder", config.val_dir),
            ("negatives folder", config.negatives),
        )
        check_not_inside(self.path, data, "out")
        check_output_dir(self.path, "out")
        if worker != 0:
            # Extra workers share the chief's folder (on one machine) and only add their checkpoint.
            if (self.checkpoint_dir(worker) / self.STATE).exists():
                raise UserError(f"{self.path} already holds this worker's checkpoint; use {{param:resume}} {self.path}")
            return
        if self.is_run():
            raise UserError(f"{self.path} already holds a run; use {{param:resume}} {self.path} or choose another {{param:out}}")
        if self.path.is_dir() and any(not self.holds_only_workers(entry) for entry in self.path.iterdir()):
            raise ParameterError("out", f"{self.path} is a folder with other files in it; choose a new or empty folder")

    def holds_only_workers(self, entry: Path) -> bool:
        """Whether `entry` is what the extra workers of this run, started at the same moment as
        the chief, may have made already: checkpoint/ holding only worker-N/ folders."""
        if entry.name == self.CHECKPOINT and entry.is_dir() and not entry.is_symlink():
            return all(child.name.startswith("worker-") and child.is_dir() for child in entry.iterdir())
        return False

    def check_resumable(self, worker: int = 0) -> None:
        if not self.path.is_dir():
            raise UserError(f"{self.path} does not exist")
        if worker == 0 and not self.is_run():
            raise UserError(f"{self.path} is not a run folder (no {self.RECORD})")
        for folder in (self.path, self.checkpoint_dir(worker)):
            if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
                raise UserError(f"{folder}: cannot write (permission denied); a run is resumed where it can save its epochs")

    @contextlib.contextmanager
    def locked(self, worker: int = 0) -> Iterator[None]:
        """Hold the run (this worker's part of it) for this process: a second hh-train on it,
        a resume while it still trains, is refused. The kernel's lock (flock): a process that
        dies, however it dies, holds it no more."""
        if worker:
            self.own_dir(worker).mkdir(parents=True, exist_ok=True)
        path = self.own_dir(worker) / ".train.lock"
        handle = open(path, "a")  # held open for the block: it is the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise UserError(
                f"{self.path} is being trained by another hh-train right now; wait for it to end, or stop it first"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    # -- run.json --------------------------------------------------------------------------
    def read_record(self) -> RunRecord:
        try:
            text = self.record_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"{self.path} is not a run folder (no {self.RECORD})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{self.record_path}: unreadable run record ({exc})") from None
        try:
            return RunRecord.from_json(text)
        except (ValueError, TypeError) as exc:
            raise UserError(f"{self.record_path}: unreadable run record ({exc})") from None

    def read_config(self) -> TrainConfig:
        return self.read_record().config

    def write_record(self, record: RunRecord) -> None:
        atomic_write_text(self.record_path, record.to_json())

    # -- the preprocessing contract ---------------------------------------------------------
    def write_contract(self, spec: PreprocessingSpec) -> None:
        """The spec, naming this run and when it started (kept from the first start when resumed)."""
        started = None
        if self.spec_path.exists():
            with contextlib.suppress(UserError):
                started = self.read_spec().run
        run = started or RunInfo(self.path.resolve().name, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        atomic_write_text(self.spec_path, spec.with_run(run).to_json())
        atomic_write_text(self.labels_path, spec.labels_text())

    def read_spec(self) -> PreprocessingSpec:
        return read_spec(self.spec_path)

    # -- the split ---------------------------------------------------------------------------
    def write_split(self, split: RecordedSplit, worker: int = 0) -> None:
        atomic_write_text(self.split_path(worker), split.to_json())

    def read_split(self, worker: int = 0) -> RecordedSplit | None:
        path = self.split_path(worker)
        if not path.exists():
            return None
        try:
            return RecordedSplit.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path}: unreadable split record ({exc})") from None

    def write_bad_files(self, lines: list[str]) -> None:
        atomic_write_text(self.bad_files_path, "".join(line + "\n" for line in lines))

    # -- checkpoint: the commit ---------------------------------------------------------------
    def read_state(self, worker: int = 0) -> CheckpointState | None:
        """The committed state, or None before the first completed epoch."""
        path = self.checkpoint_dir(worker) / self.STATE
        if not path.exists():
            return None
        try:
            state = CheckpointState.from_json(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise UserError(
                f"{path} is damaged ({type(exc).__name__}: {exc}); this run cannot be resumed: start a new one"
            ) from None
        for name in (state.last_file, state.best_file):
            if name is not None and not (self.checkpoint_dir(worker) / name).is_file():
                raise UserError(f"{path} names {name}, which is missing; this run cannot be resumed: start a new one")
        return state

    def commit_epoch(
        self,
        state: CheckpointState,
        logs: dict[str, float],
        save_model: Callable[[Path], None],
        worker: int = 0,
    ) -> CheckpointState:
        """Write this epoch's model, then commit the new state. Returns the committed state.

        save_model(path) writes the model (with optimizer state) to `path`.
        """
        folder = self.checkpoint_dir(worker)
        epoch = state.epochs_done + 1
        name = f"epoch-{epoch:04d}.keras"
        with atomic_path(folder / name) as tmp:
            save_model(tmp)
            mark_epoch(tmp, epoch)
        history = {key: [*state.history[key], float(logs.get(key, math.nan))] for key in HISTORY_KEYS}
        val_loss = float(logs.get("val_loss", math.inf))
        improved = val_loss < state.best_val_loss  # NaN never improves
        new = CheckpointState(
            epochs_done=epoch,
            best_epoch=epoch if improved else state.best_epoch,
            best_val_loss=val_loss if improved else state.best_val_loss,
            last_file=name,
            best_file=name if improved or state.best_file is None else state.best_file,
            history=history,
        )
        if new.best_epoch == 0:  # every val_loss so far is NaN: the last epoch stands in
            new.best_epoch, new.best_file = epoch, name
        atomic_write_text(folder / self.STATE, new.to_json())  # the commit
        self._drop_uncommitted(folder, new)
        return new

    def _drop_uncommitted(self, folder: Path, state: CheckpointState) -> None:
        keep = {state.last_file, state.best_file}
        for path in folder.glob("epoch-*.keras"):
            if path.name not in keep:
                path.unlink(missing_ok=True)

    def discard_uncommitted(self, worker: int = 0) -> None:
        """Before resuming: epoch files a kill left behind, and temporary files of dead processes."""
        state = self.read_state(worker)
        folder = self.checkpoint_dir(worker)
        if folder.is_dir():
            self._drop_uncommitted(folder, state or CheckpointState())
        remove_stale_temp_files(self.path)

    # -- published views: model.keras, history.csv, run.json ------------------------------------
    def publish(self, state: CheckpointState, record: RunRecord) -> RunRecord:
        """Make model.keras, history.csv and run.json show the committed `state`.

        model.keras first, then run.json: a kill between the two leaves them disagreeing about
        the best epoch, which `stale_publication` sees.
        Returns the record as written.
        """
        if state.best_file is None:
            raise ValueError("publish() needs a committed epoch")
        if model_epoch(self.model_path) != state.best_epoch:
            atomic_link_or_copy(self.checkpoint_dir() / state.best_file, self.model_path)
        atomic_write_text(self.history_path, history_csv(state.history))
        record = replace(
            record,
            epochs_done=state.epochs_done,
            best_epoch=state.best_epoch,
            best_val_loss=state.history["val_loss"][state.best_epoch - 1],
            best_val_accuracy=state.history["val_accuracy"][state.best_epoch - 1],
        )
        self.write_record(record)
        return record

    def stale_publication(self) -> str | None:
        """Why model.keras and run.json do not describe the same epoch, or None when they do."""
        record = self.read_record()
        if record.best_epoch is None:
            return None  # no epoch published yet
        if not self.model_path.exists():
            return f"{self.model_path} is missing"
        saved = model_epoch(self.model_path)
        if saved is not None and saved != record.best_epoch:
            return f"{self.model_path} is epoch {saved}, but {self.record_path} says the best is epoch {record.best_epoch}"
        return None

    def repair_publication(self) -> bool:
        """Rebuild model.keras, history.csv and run.json from the committed state if they lag.
        True when something was repaired."""
        if self.stale_publication() is None:
            return False
        state = self.read_state()
        if state is None or state.epochs_done == 0:
            raise UserError(f"{self.stale_publication()}, and there is no checkpoint to rebuild it from")
        self.publish(state, self.read_record())
        return True

    def read_history(self) -> dict[str, list[float]]:
        history: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
        if not self.history_path.exists():
            return history
        with open(self.history_path, newline="") as handle:
            for row in csv.DictReader(handle):
                for key in HISTORY_KEYS:
                    history[key].append(float(row[key]))
        return history
