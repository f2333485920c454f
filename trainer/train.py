"""The training loop: class folders in, a run folder out.

A run folder holds everything the converter and the edge need, each file written atomically:

    model.keras          best epoch by validation loss
    labels.txt           one class name per line, index order
    preprocessing.json   the PreprocessingSpec (hh.edge.spec)
    run.json             the configuration and data split that made it, and the outcome
    history.csv          per-epoch loss and accuracy, training and validation
    curves.png           the same, plotted
    checkpoint/          the last completed epoch with optimizer state, for --resume
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import platform
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from hh.edge.cli_util import UserError
from hh.edge.files import atomic_path, atomic_write_text
from hh.edge.folders import ImageFolder, check_same_classes, list_image_folder, split_validation
from hh.edge.spec import LABELS_FILENAME, SPEC_FILENAME, PreprocessingSpec
from hh.trainer.models import ARCHITECTURES, build_model, compile_model
from hh.trainer.scan import BAD_FILES_NAME, ScanReport, enforce, scan_folder

MODEL_FILENAME = "model.keras"
RUN_FILENAME = "run.json"
HISTORY_FILENAME = "history.csv"
CURVES_FILENAME = "curves.png"
CHECKPOINT_DIR = "checkpoint"
NORMALIZED_DIR = "normalized"
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class TrainConfig:
    """Everything that determines a run. Defaults are the notes' (300 px, batch 128, 15 epochs)."""

    data_dir: str
    out: str
    val_dir: str | None = None
    val_split: float | None = None
    image_size: int = 300
    batch_size: int = 128
    epochs: int = 15
    learning_rate: float = 0.001
    arch: str = "seed"
    seed: int = 0
    class_mode: str = "auto"
    aspect: str = "squash"
    interpolation: str = "bilinear"
    strict: bool = False  # any unusable image is an error instead of being skipped
    strategy: str = "auto"  # hh.trainer.distribute.STRATEGIES
    cache: str | None = None  # folder for an on-disk cache of decoded images (default: RAM if it fits)

    def validate(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise UserError(f"unknown --arch {self.arch!r}; choose one of {', '.join(sorted(ARCHITECTURES))}")
        if self.val_dir and self.val_split is not None:
            raise UserError("give either --val-dir or --val-split, not both")
        for name, value, low in (("--epochs", self.epochs, 1), ("--batch-size", self.batch_size, 1), ("--image-size", self.image_size, 8)):
            if value < low:
                raise UserError(f"{name} must be at least {low}, got {value}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise UserError(f"--lr must be a positive number, got {self.learning_rate}")
        from hh.trainer.distribute import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise UserError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.class_mode not in ("auto", "binary", "categorical"):
            raise UserError(f"--class-mode must be auto, binary or categorical, got {self.class_mode!r}")


@dataclass
class RunData:
    train: ImageFolder
    val: ImageFolder
    spec: PreprocessingSpec
    scan_reports: list[ScanReport] = field(default_factory=list)

    @property
    def bad_files(self) -> list[str]:
        """'path<TAB>problem' for every skipped file."""
        return [f"{v.path}\t{v.problem}" for r in self.scan_reports for v in (*r.bad, *r.ignored)]

    def describe_scan(self) -> str | None:
        if any(r.bad or r.normalised or r.ignored for r in self.scan_reports):
            return "\n".join(r.summary() for r in self.scan_reports)
        return None


@dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int
    best_val_accuracy: float
    best_val_loss: float
    epochs_run: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)


def resolve_data(config: TrainConfig, run_dir: Path | None = None) -> RunData:
    """List, check and split the data, choose the class mode, and build the spec.

    Every image is scanned first (hh.trainer.scan): bad files are skipped (or refused with
    strict), odd-but-real ones are normalised into run_dir/normalized/.
    """
    config.validate()
    folder = list_image_folder(config.data_dir, "training folder")
    cache = (run_dir or Path(config.out)) / NORMALIZED_DIR
    folder, report = scan_folder(folder, cache)
    reports = [report]
    if config.val_dir:
        train = folder
        val = list_image_folder(config.val_dir, "validation folder")
        check_same_classes(train, val)
        val, val_report = scan_folder(val, cache)
        reports.append(val_report)
    else:
        train, val = split_validation(folder, config.val_split if config.val_split is not None else 0.2, config.seed)
    for r in reports:
        enforce(r, config.strict, config.data_dir if r is report else str(config.val_dir))
    class_mode = config.class_mode
    if class_mode == "auto":
        class_mode = "binary" if len(train.class_names) == 2 else "categorical"
    if class_mode == "binary" and len(train.class_names) != 2:
        raise UserError(f"--class-mode binary needs exactly 2 classes; {config.data_dir} has {len(train.class_names)}")
    spec = PreprocessingSpec(
        height=config.image_size,
        width=config.image_size,
        class_names=train.class_names,
        class_mode=class_mode,
        interpolation=config.interpolation,
        aspect=config.aspect,
    )
    return RunData(train, val, spec, reports)


def read_history(path: Path) -> dict[str, list[float]]:
    history: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
    if not path.exists():
        return history
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            for key in HISTORY_KEYS:
                history[key].append(float(row[key]))
    return history


def history_csv(history: dict[str, list[float]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("epoch", *HISTORY_KEYS))
    for i in range(len(history["loss"])):
        writer.writerow((i + 1, *(f"{history[key][i]:.6f}" for key in HISTORY_KEYS)))
    return out.getvalue()


@contextlib.contextmanager
def deferred_interrupt():
    """Hold SIGINT back for the duration of the block, then raise KeyboardInterrupt if it came."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


class RunFolderCallback(keras.callbacks.Callback):
    """After every epoch: keep the best model, a resumable checkpoint and the history on disk.

    Order matters for crash safety: the best model and history first, the checkpoint state
    last, so a resume never claims an epoch whose outputs were not written. Only the chief
    writes the run's artifacts; every worker writes its own checkpoint.
    """

    def __init__(self, run_dir: Path, history: dict[str, list[float]], best_val_loss: float, checkpoint: Path, is_chief: bool = True):
        super().__init__()
        self.run_dir = run_dir
        self.history = history
        self.best_val_loss = best_val_loss
        self.checkpoint = checkpoint
        self.is_chief = is_chief

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        # Ctrl-C while the epoch's files are being written waits until they are all written:
        # the interrupt then lands on a consistent, resumable run folder.
        with deferred_interrupt():
            self._save_epoch(epoch, logs)

    def _save_epoch(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        for key in HISTORY_KEYS:
            self.history[key].append(float(logs.get(key, float("nan"))))
        val_loss = float(logs.get("val_loss", float("inf")))
        if val_loss < self.best_val_loss:
            self.best_val_loss = val_loss
            if self.is_chief:
                with atomic_path(self.run_dir / MODEL_FILENAME) as tmp:
                    self.model.save(tmp)
        if self.is_chief:
            atomic_write_text(self.run_dir / HISTORY_FILENAME, history_csv(self.history))
        checkpoint = self.checkpoint
        with atomic_path(checkpoint / "last.keras") as tmp:
            self.model.save(tmp)
        state = {"epochs_done": epoch + 1, "best_val_loss": self.best_val_loss}
        atomic_write_text(checkpoint / "state.json", json.dumps(state, indent=2) + "\n")


def best_epoch(history: dict[str, list[float]]) -> int:
    losses = history["val_loss"]
    return min(range(len(losses)), key=lambda i: (math.isnan(losses[i]), losses[i])) + 1


def write_run_record(run_dir: Path, config: TrainConfig, data: RunData, **outcome) -> None:
    record = {
        "config": asdict(config),
        "class_names": list(data.spec.class_names),
        "class_mode": data.spec.class_mode,
        "train_images": data.train.counts(),
        "val_images": data.val.counts(),
        "skipped_files": len(data.bad_files),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()},
        **outcome,
    }
    atomic_write_text(run_dir / RUN_FILENAME, json.dumps(record, indent=2) + "\n")


def read_run_config(run_dir: Path) -> TrainConfig:
    path = run_dir / RUN_FILENAME
    try:
        record = json.loads(path.read_text())
        return TrainConfig(**record["config"])
    except FileNotFoundError:
        raise UserError(f"{run_dir} is not a run folder (no {RUN_FILENAME})") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: unreadable run record ({exc})") from None


def train(config: TrainConfig, resume: bool = False, verbose: int | str = "auto") -> TrainResult:
    """Train per `config` into `config.out`; with resume, continue a run from its checkpoint."""
    from hh.trainer.distribute import cluster_dataset, fit_multiworker, resolve_cluster

    config.validate()
    run_dir = Path(config.out)
    cluster = resolve_cluster(config.strategy)  # first: it configures TensorFlow's collectives
    checkpoint = run_dir / CHECKPOINT_DIR
    if not cluster.is_chief:
        checkpoint = checkpoint / f"worker-{cluster.worker_index}"
    if not resume and ((cluster.is_chief and (run_dir / MODEL_FILENAME).exists()) or (checkpoint / "state.json").exists()):
        raise UserError(f"{run_dir} already holds a run; use --resume {run_dir} or choose another --out")
    if config.batch_size % cluster.replicas:
        raise UserError(f"--batch-size {config.batch_size} (global) does not split evenly over {cluster.replicas} replicas")
    if cluster.strategy is not None:
        print(f"distributed training: {cluster.description}, {cluster.replicas} replicas, global batch {config.batch_size}", file=sys.stderr)
    data = resolve_data(config, run_dir)
    if not config.val_dir and config.val_split is None:
        print("no --val-dir: holding out 20% of each class for validation (--val-split 0.2)", file=sys.stderr)
    if data.describe_scan():
        print(data.describe_scan(), file=sys.stderr)
    initial_epoch = 0
    best_val_loss = float("inf")
    if resume:
        state_path = checkpoint / "state.json"
        if not state_path.exists():
            raise UserError(f"{run_dir} has no completed epoch to resume from ({state_path} missing)")
        state = json.loads(state_path.read_text())
        initial_epoch = int(state["epochs_done"])
        best_val_loss = float(state["best_val_loss"])
        history = read_history(run_dir / HISTORY_FILENAME)
        # history.csv is written before state.json, so it may hold one epoch more: trim it.
        history = {k: v[:initial_epoch] for k, v in history.items()}
        with cluster.scope():
            model = keras.models.load_model(checkpoint / "last.keras", safe_mode=True)
        print(f"resuming {run_dir} after epoch {initial_epoch} of {config.epochs}", file=sys.stderr)
    else:
        keras.utils.set_random_seed(config.seed)
        history = {key: [] for key in HISTORY_KEYS}
        with cluster.scope():
            model = compile_model(build_model(config.arch, data.spec), data.spec, config.learning_rate)

    run_dir.mkdir(parents=True, exist_ok=True)
    if cluster.is_chief:
        atomic_write_text(run_dir / SPEC_FILENAME, data.spec.to_json())
        atomic_write_text(run_dir / LABELS_FILENAME, data.spec.labels_text())
        if data.bad_files:
            atomic_write_text(run_dir / BAD_FILES_NAME, "".join(line + "\n" for line in data.bad_files))
        write_run_record(run_dir, config, data, status="training")

    cache = {split: str(Path(config.cache) / split) if config.cache else None for split in ("train", "validation")}
    if config.cache:
        Path(config.cache).mkdir(parents=True, exist_ok=True)
    train_ds = cluster_dataset(cluster, data.train, data.spec, config.batch_size, True, config.seed + initial_epoch, cache["train"])
    val_ds = cluster_dataset(cluster, data.val, data.spec, config.batch_size, False, 0, cache["validation"])
    callback = RunFolderCallback(run_dir, history, best_val_loss, checkpoint, cluster.is_chief)
    started = time.monotonic()
    interrupted = False
    if initial_epoch < config.epochs:
        try:
            if isinstance(cluster.strategy, tf.distribute.MultiWorkerMirroredStrategy):
                fit_multiworker(
                    model, cluster, data.spec, train_ds, val_ds, config.batch_size, config.epochs, initial_epoch, callback, verbose
                )
            else:
                model.fit(
                    train_ds,
                    validation_data=val_ds,
                    epochs=config.epochs,
                    initial_epoch=initial_epoch,
                    callbacks=[callback],
                    shuffle=False,  # the dataset shuffles itself, each epoch
                    verbose=verbose,
                )
        except KeyboardInterrupt:
            interrupted = True
    seconds = time.monotonic() - started
    history = callback.history
    epochs_run = len(history["loss"])
    if epochs_run == 0:
        if cluster.is_chief:
            write_run_record(run_dir, config, data, status="interrupted", epochs_done=0)
        raise KeyboardInterrupt
    best = best_epoch(history)
    result = TrainResult(
        run_dir=run_dir,
        best_epoch=best,
        best_val_accuracy=history["val_accuracy"][best - 1],
        best_val_loss=history["val_loss"][best - 1],
        epochs_run=epochs_run,
        seconds=seconds,
        history=history,
    )
    if not cluster.is_chief:
        if interrupted:
            raise KeyboardInterrupt
        return result
    from hh.trainer.plots import plot_curves

    plot_curves(history, run_dir / CURVES_FILENAME, title=f"{config.arch} on {config.data_dir}")
    write_run_record(
        run_dir,
        config,
        data,
        status="interrupted" if interrupted else "complete",
        epochs_done=epochs_run,
        best_epoch=best,
        best_val_accuracy=result.best_val_accuracy,
        best_val_loss=result.best_val_loss,
        train_seconds=round(seconds, 1),
    )
    if interrupted:
        raise KeyboardInterrupt
    return result
