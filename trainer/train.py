"""The training loop: class folders in, a run folder out (layout: hh.trainer.run_folder).

`train()` reads as its steps: check the outputs, record the run, scan and split the data (or
read the recorded split when resuming), build or restore the model, fit with a commit after
every epoch, and finish the record. Every epoch is committed to disk before the next starts,
so a kill, Ctrl-C, SIGTERM or a full disk loses at most the running epoch.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from ..edge.errors import OutOfSpace, ParameterError, UserError
from ..edge.files import check_not_inside, check_output_dir
from ..edge.folders import ImageFolder, check_same_classes, list_image_folder, split_validation
from ..edge.spec import PreprocessingSpec
from .config import TrainConfig
from .decode import DecodedImages
from .models import build_model, compile_model
from .run_folder import CheckpointState, RunFolder
from .scan import ScanReport, enforce, normalised_copy, scan_and_decode, scan_folder
from .split import RecordedSplit, SplitEntry, describe_drift

Progress = Callable[[str], None]


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def silent(line: str) -> None:
    pass


@dataclass
class RunData:
    train: ImageFolder
    val: ImageFolder
    spec: PreprocessingSpec
    split: RecordedSplit
    scan_reports: list[ScanReport] = field(default_factory=list)
    # The model inputs the scan decoded, when training keeps images in RAM: the first epoch
    # then decodes nothing again. Both splits may share one (a held-out fraction).
    decoded: dict[str, DecodedImages] = field(default_factory=dict)

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
    evaluation: dict | None = None  # per-class precision/recall/F1, balanced accuracy (hh.edge.evaluate)
    stopped_early: bool = False


# -- data ------------------------------------------------------------------------------------
def build_spec(config: TrainConfig, class_names: tuple[str, ...]) -> PreprocessingSpec:
    class_mode = config.class_mode
    if class_mode == "auto":
        class_mode = "binary" if len(class_names) == 2 else "categorical"
    if class_mode == "binary" and len(class_names) != 2:
        raise ParameterError("class_mode", f"binary needs exactly 2 classes; {config.data_dir} has {len(class_names)}")
    return PreprocessingSpec(
        height=config.image_size,
        width=config.image_size,
        class_names=class_names,
        class_mode=class_mode,
        interpolation=config.interpolation,
        aspect=config.aspect,
    )


def record_split(config: TrainConfig, train: ImageFolder, val: ImageFolder, reports: list[ScanReport]) -> RecordedSplit:
    """The split as files on disk (originals, with size and mtime), from the scan's verdicts."""
    kept = {v.load_path: v for r in reports for v in r.kept}

    def entries(folder: ImageFolder) -> list[SplitEntry]:
        out = []
        for path, label in zip(folder.paths, folder.labels):
            verdict = kept[path]
            normalized = Path(path).name if verdict.normalise else None
            out.append(SplitEntry(str(Path(verdict.path).absolute()), label, verdict.size, verdict.mtime_ns, normalized))
        return out

    skipped = sorted(str(Path(v.path).absolute()) for r in reports for v in (*r.bad, *r.ignored))
    return RecordedSplit(train.class_names, config.data_dir, config.val_dir, entries(train), entries(val), skipped)


@dataclass
class Listing:
    """The data folders as listed (cheap: no image opened), checked before anything is written."""

    train: ImageFolder
    val: ImageFolder | None


def list_data(config: TrainConfig) -> Listing:
    train = list_image_folder(config.data_dir, "training folder")
    val = None
    if config.val_dir:
        val = list_image_folder(config.val_dir, "validation folder")
        check_same_classes(train, val)
    build_spec(config, train.class_names)  # a class mode that does not fit the classes fails here
    return Listing(train, val)


def scan_and_split(config: TrainConfig, run: RunFolder, listing: Listing) -> RunData:
    """Check and split the data, choose the class mode, build the spec and the record.

    Every image is scanned first (hh.trainer.scan): bad files are skipped (or refused with
    strict), odd-but-real ones are normalised into the run folder. When the images fit in RAM
    (and no on-disk cache was asked for), the scan keeps what it decoded for training.
    """
    from .data import should_cache

    spec = build_spec(config, listing.train.class_names)
    total = len(listing.train) + (len(listing.val) if listing.val is not None else 0)
    in_ram = config.cache is None and should_cache(total, spec)

    def scan(folder: ImageFolder) -> tuple[ImageFolder, ScanReport, DecodedImages | None]:
        if in_ram:
            return scan_and_decode(folder, run.normalized_dir, spec)
        return (*scan_folder(folder, run.normalized_dir), None)

    folder, report, decoded = scan(listing.train)
    reports = [report]
    decoded_by_split = {"train": decoded, "validation": decoded}
    if listing.val is not None:
        train = folder
        val, val_report, decoded_by_split["validation"] = scan(listing.val)
        reports.append(val_report)
    else:
        fraction = config.val_split if config.val_split is not None else 0.2
        train, val = split_validation(folder, fraction, config.seed)
    enforce(report, config.strict, config.data_dir)
    if config.val_dir:
        enforce(reports[1], config.strict, config.val_dir)
    decoded_by_split = {name: d for name, d in decoded_by_split.items() if d is not None}
    return RunData(train, val, spec, record_split(config, train, val, reports), reports, decoded_by_split)


def recorded_data(config: TrainConfig, run: RunFolder, split: RecordedSplit, say: Progress) -> RunData:
    """The data of a resumed run: exactly the recorded split, checked against the disk."""
    drift = split.drift()
    if drift:
        raise UserError(
            f"{len(drift)} file(s) of this run's recorded split changed since it started ({describe_drift(drift)}); "
            "restore them, or start a new run"
        )
    added = split.added()
    if added:
        say(f"note: {len(added)} image(s) added to the data folders since this run started are not part of it (ignored)")
    for entry in (*split.train, *split.validation):
        if entry.normalized and not (run.normalized_dir / entry.normalized).exists():
            normalised_copy(entry.file, run.normalized_dir)
    return RunData(
        split.folder("train", run.path), split.folder("validation", run.path), build_spec(config, split.class_names), split
    )


def cache_key(data: RunData, split: str) -> str:
    """What determines a decoded-image cache: the files (and their versions) and the spec."""
    digest = hashlib.sha256(data.spec.to_json().encode())
    for entry in data.split.entries(split):
        digest.update(f"{entry.file}|{entry.size}|{entry.mtime_ns}|{entry.label}\n".encode())
    return digest.hexdigest()[:16]


# -- interrupts ------------------------------------------------------------------------------
@contextlib.contextmanager
def deferred_interrupt():
    """Hold SIGINT and SIGTERM back for the block, then raise KeyboardInterrupt if one came.

    Wraps the writes that commit an epoch: an interrupt then lands on a consistent folder.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt


def epoch_line(state: CheckpointState, epochs: int, seconds: float) -> str:
    h = {key: values[-1] for key, values in state.history.items()}
    best = " (best so far)" if state.best_epoch == state.epochs_done else ""
    return (
        f"epoch {state.epochs_done}/{epochs}: loss {h['loss']:.4f} accuracy {h['accuracy']:.3f}, "
        f"val loss {h['val_loss']:.4f} val accuracy {h['val_accuracy']:.3f} ({seconds:.1f}s){best}"
    )


class EpochCommitter(keras.callbacks.Callback):
    """After every epoch: commit the checkpoint, then (the chief) publish model.keras,
    history.csv and run.json from it. Only the chief publishes; every worker commits its own
    checkpoint."""

    def __init__(
        self,
        run: RunFolder,
        state: CheckpointState,
        record: dict | None,
        worker: int,
        epochs: int,
        say: Progress,
        patience: int | None = None,
    ):
        super().__init__()
        self.run, self.state, self.record, self.worker = run, state, record, worker
        self.epochs, self.say, self.patience = epochs, say, patience
        self.phase_start = state.epochs_done  # early stopping counts within a phase
        self.patience_active = True  # the last phase (fit() says which)
        self.stopped_early = False
        self._started = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        with deferred_interrupt():
            self.state = self.run.commit_epoch(self.state, logs or {}, self.model.save, self.worker)
            if self.record is not None:
                self.record = self.run.publish(self.state, self.record)
        self.say(epoch_line(self.state, self.epochs, time.monotonic() - self._started))
        waited = self.state.epochs_done - max(self.state.best_epoch, self.phase_start)
        if self.patience and self.patience_active and waited >= self.patience:
            self.say(f"no better val loss for {waited} epochs (--patience {self.patience}): stopping early")
            self.stopped_early = True
            self.model.stop_training = True


# -- the steps -------------------------------------------------------------------------------
def check_outputs(config: TrainConfig, run: RunFolder, resume: bool, worker: int) -> None:
    """Everything that would make the run's results unsaveable, before any work."""
    if resume:
        run.check_resumable(worker)
    else:
        run.check_new(config, worker)
    if config.cache:
        check_not_inside(config.cache, (("training folder", config.data_dir), ("validation folder", config.val_dir)), "cache")
        check_output_dir(config.cache, "cache")


def start_record(run: RunFolder, config: TrainConfig, resume: bool) -> dict:
    """run.json goes first, before the scan: from here on the folder is a run that --resume accepts."""
    if resume:
        record = run.read_record()
        record["config"] = config.as_dict()
    else:
        run.path.mkdir(parents=True, exist_ok=True)
        record = {
            "config": config.as_dict(),
            "status": "scanning",
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()},
        }
    run.write_record(record)
    return record


def prepare_data(config: TrainConfig, run: RunFolder, worker: int, is_chief: bool, say: Progress) -> RunData:
    recorded = run.read_split(worker)
    if recorded is not None:
        return recorded_data(config, run, recorded, say)
    data = scan_and_split(config, run, list_data(config))
    if not config.val_dir and config.val_split is None:
        say("no --val-dir: holding out 20% of each class for validation (--val-split 0.2)")
    if data.describe_scan():
        say(data.describe_scan())
    run.write_split(data.split, worker)
    if is_chief:
        run.write_contract(data.spec)
        if data.bad_files:
            run.write_bad_files(data.bad_files)
    return data


def restore_or_build_model(
    run: RunFolder, state: CheckpointState, config: TrainConfig, spec: PreprocessingSpec, cluster, worker: int
):
    if state.epochs_done == 0:
        keras.utils.set_random_seed(config.seed)
        with cluster.scope():
            model = build_model(config.arch, spec, config.resolved_weights)
            return compile_model(model, spec, config.learning_rate, config.optimizer)
    path = run.checkpoint_dir(worker) / state.last_file
    try:
        with cluster.scope():
            return keras.models.load_model(path, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a damaged file; all mean the same
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{path}: the checkpoint cannot be loaded ({reason}); this run cannot be resumed: start a new one"
        ) from None


def record_training_start(run: RunFolder, record: dict, data: RunData) -> dict:
    record = {
        **record,
        "status": "training",
        "class_names": list(data.spec.class_names),
        "class_mode": data.spec.class_mode,
        "train_images": data.train.counts(),
        "val_images": data.val.counts(),
        "skipped_files": len(data.split.skipped),
    }
    run.write_record(record)
    return record


def input_pipelines(cluster, data: RunData, config: TrainConfig, epochs_done: int):
    from .distribute import cluster_dataset

    cache = {split: None for split in ("train", "validation")}
    if config.cache:
        cache = {split: str(Path(config.cache) / f"{cache_key(data, split)}-{split}") for split in cache}
        Path(config.cache).mkdir(parents=True, exist_ok=True)
    # The seed moves with the epoch, so a resumed run does not replay the first epochs' order.
    train_ds = cluster_dataset(
        cluster,
        data.train,
        data.spec,
        config.batch_size,
        True,
        config.seed + epochs_done,
        cache["train"],
        config.augment,
        data.decoded.get("train"),
    )
    val_ds = cluster_dataset(
        cluster, data.val, data.spec, config.batch_size, False, 0, cache["validation"], decoded=data.decoded.get("validation")
    )
    return train_ds, val_ds


def class_weights(config: TrainConfig, data: RunData) -> dict[int, float] | None:
    """balanced: each class weighs n_images / (n_classes * its images), so every class counts
    as much in the loss as if the data were balanced."""
    if config.class_weight == "none":
        return None
    counts = list(data.train.counts().values())
    return {i: sum(counts) / (len(counts) * count) for i, count in enumerate(counts)}


def switch_to_fine_tuning(model, config: TrainConfig, spec: PreprocessingSpec, cluster, say: Progress) -> None:
    """The second phase: the backbone's top layers train too, at a tenth of the learning rate
    (large steps would wreck what ImageNet taught them)."""
    from .models import BACKBONE, unfreeze_top

    if model.get_layer(BACKBONE).trainable:  # resumed inside this phase: already switched
        return
    with cluster.scope():
        layers = unfreeze_top(model, config.fine_tune_layers)
        compile_model(model, spec, config.learning_rate / 10, config.optimizer)
    lr = config.learning_rate / 10
    say(f"fine-tuning the backbone's last {config.fine_tune_layers} layers ({layers} with weights) at lr {lr:g}")


def fit(model, cluster, data: RunData, datasets, config: TrainConfig, committer: EpochCommitter, say: Progress) -> bool:
    """Train through both phases (the head; then, for a backbone with fine_tune_epochs, its
    top layers too) up to config.total_epochs; True when interrupted (Ctrl-C, SIGTERM)."""
    from .distribute import fit_multiworker

    train_ds, val_ds = datasets
    weights = class_weights(config, data)
    phases = [config.epochs] + ([config.total_epochs] if config.fine_tune_epochs else [])
    try:
        for phase, end in enumerate(phases):
            start = committer.state.epochs_done
            if start >= end:
                continue
            if phase == 1:
                switch_to_fine_tuning(model, config, data.spec, cluster, say)
            committer.phase_start = start
            # Early stopping ends the last phase only: the head's phase has a fixed length, so
            # the epoch numbers say which phase a run (and a resume) is in.
            committer.patience_active = phase == len(phases) - 1
            if isinstance(cluster.strategy, tf.distribute.MultiWorkerMirroredStrategy):
                fit_multiworker(model, cluster, data.spec, train_ds, val_ds, config.batch_size, end, start, committer, weights)
            else:
                model.fit(
                    train_ds,
                    validation_data=val_ds,
                    epochs=end,
                    initial_epoch=start,
                    callbacks=[committer],
                    class_weight=weights,
                    shuffle=False,  # the dataset shuffles itself, each epoch
                    verbose=0,  # one line per epoch comes from the committer
                )
    except KeyboardInterrupt:
        return True
    return False


def finish(
    run: RunFolder,
    config: TrainConfig,
    record: dict | None,
    state: CheckpointState,
    interrupted: bool,
    seconds: float,
    stopped_early: bool = False,
    evaluation: dict | None = None,
) -> TrainResult:
    if record is not None:
        if state.epochs_done:
            from .plots import plot_curves

            plot_curves(state.history, run.curves_path, title=f"{config.arch} on {config.data_dir}")
        done = state.epochs_done >= config.total_epochs or stopped_early
        status = "complete" if done and not interrupted else "interrupted"
        run.write_record(
            {
                **record,
                "status": status,
                "epochs_done": state.epochs_done,
                "stopped_early": stopped_early,
                "train_seconds": round(seconds, 1),
                **({"evaluation": evaluation} if evaluation else {}),
            }
        )
    if interrupted or state.epochs_done == 0:
        raise KeyboardInterrupt
    best = state.best_epoch
    return TrainResult(
        run_dir=run.path,
        best_epoch=best,
        best_val_accuracy=state.history["val_accuracy"][best - 1],
        best_val_loss=state.history["val_loss"][best - 1],
        epochs_run=state.epochs_done,
        seconds=seconds,
        history=state.history,
        evaluation=evaluation,
        stopped_early=stopped_early,
    )


def train(config: TrainConfig, resume: bool = False, progress: Progress = print_progress) -> TrainResult:
    """Train per `config` into `config.out`; with resume, continue that run from its last
    committed epoch (with its recorded split). Raises KeyboardInterrupt after saving when
    interrupted, OutOfSpace when the disk fills (the run stays resumable)."""
    from .distribute import resolve_cluster

    config = config.resolved()
    config.validate()
    run = RunFolder(config.out)
    cluster = resolve_cluster(config.strategy)  # first: it configures TensorFlow's collectives
    worker = cluster.worker_index
    check_outputs(config, run, resume, worker)
    if config.batch_size % cluster.replicas:
        raise ParameterError("batch_size", f"{config.batch_size} (global) does not split evenly over {cluster.replicas} replicas")
    if cluster.strategy is not None:
        progress(f"distributed training: {cluster.description}, {cluster.replicas} replicas, global batch {config.batch_size}")
    state = CheckpointState()
    if resume:
        run.discard_uncommitted(worker)
        if cluster.is_chief:
            run.repair_publication()
        state = run.read_state(worker) or CheckpointState()
        finished = run.is_run() and run.read_record().get("status") == "complete"
        if state.epochs_done >= config.total_epochs or (finished and config.total_epochs <= recorded_total(run)):
            more = f" (+{config.fine_tune_epochs} fine-tuning)" if config.fine_tune_epochs else ""
            raise ParameterError("epochs", f"{config.epochs}{more} are already done in {run.path}; give more to train longer")
    if not resume:
        list_data(config)  # a wrong folder is refused before the run folder is made
    if config.resolved_weights == "imagenet" and state.epochs_done == 0:
        from .weights import imagenet_weights

        imagenet_weights(config.arch)  # fetched (or refused, offline) before anything is written
    existed = run.path.exists()
    record = start_record(run, config, resume) if cluster.is_chief else None
    started = time.monotonic()
    try:
        data = prepare_data(config, run, worker, cluster.is_chief, progress)
        model = restore_or_build_model(run, state, config, data.spec, cluster, worker)
        if record is not None:
            record = record_training_start(run, record, data)
        if resume:
            progress(f"resuming {run.path} after epoch {state.epochs_done} of {config.total_epochs}")
        progress(describe_classes(config, data))
        committer = EpochCommitter(run, state, record, worker, config.total_epochs, progress, config.patience)
        datasets = input_pipelines(cluster, data, config, state.epochs_done)
        interrupted = fit(model, cluster, data, datasets, config, committer, progress)
        evaluation = None
        if cluster.is_chief and not interrupted and committer.state.epochs_done:
            evaluation = evaluate_best(run, data)
    except OutOfSpace as exc:
        done = (run.read_state(worker) or CheckpointState()).epochs_done
        raise OutOfSpace(
            f"{exc}; {run.path} is saved up to epoch {done}: free some space, then hh-train --resume {run.path}"
        ) from None
    except UserError:
        # Refused before the first epoch (unusable data, --strict): a fresh run folder that
        # holds nothing of value is removed again rather than left as a half-made run.
        if not resume and cluster.is_chief and run.read_state() is None:
            remove_contents(run.path, keep_folder=existed)
        raise
    except KeyboardInterrupt:
        state = run.read_state(worker) or CheckpointState()
        finish(run, config, record and run.read_record(), state, True, time.monotonic() - started)
    return finish(
        run,
        config,
        committer.record,
        committer.state,
        interrupted,
        time.monotonic() - started,
        committer.stopped_early,
        evaluation,
    )


def recorded_total(run: RunFolder) -> int:
    recorded = run.read_config()
    return recorded.total_epochs


def describe_classes(config: TrainConfig, data: RunData) -> str:
    """The class counts, and their weights when balanced: imbalance is the first thing to know."""
    counts = data.train.counts()
    line = "training images: " + ", ".join(f"{name} {n}" for name, n in counts.items())
    weights = class_weights(config, data)
    if weights:
        line += "; balanced class weights " + ", ".join(f"{name} {weights[i]:.2f}" for i, name in enumerate(counts))
    return line


def evaluate_best(run: RunFolder, data: RunData) -> dict:
    """The best epoch's model on the validation images: per-class precision, recall, F1 and
    support, balanced accuracy and the confusion matrix, saved as evaluation.json with
    confusion.png and mistakes.png (the most confident wrong answers) in the run folder."""
    import numpy as np

    from ..edge.evaluate import write_report
    from .data import load_images
    from .models import keras_probabilities

    model = keras.models.load_model(run.model_path, safe_mode=True, compile=False)
    decoded = data.decoded.get("validation")
    images = decoded.take(data.val.paths) if decoded is not None else None
    if images is None:
        images, _ = load_images(data.val, data.spec)
    labels = np.asarray(data.val.labels, np.int64)
    probabilities = keras_probabilities(model, images, data.spec)
    report = write_report(
        run.path, data.spec.class_names, labels, probabilities, images[..., ::-1], [str(p) for p in data.val.paths]
    )
    return (
        {k: report[k] for k in ("accuracy", "balanced_accuracy")}
        | {"per_class": report["per_class"]}
        | {"images": int(np.size(labels))}
    )


def remove_contents(folder: Path, keep_folder: bool) -> None:
    """Empty a run folder this run filled (it was new or empty), and remove it if it was new."""
    for path in folder.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    if not keep_folder:
        with contextlib.suppress(OSError):
            folder.rmdir()


def resume(run_dir: str | Path, epochs: int | None = None, progress: Progress = print_progress) -> TrainResult:
    """Continue an interrupted run from its last committed epoch; `epochs` may raise the total."""
    run = RunFolder(run_dir)
    run.check_resumable()
    config = run.read_config().with_resume_changes({"epochs": epochs})
    config.out = str(run.path)  # the folder may have moved since
    return train(config, resume=True, progress=progress)
