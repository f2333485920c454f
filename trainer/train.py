"""A training run: class folders in, a run folder out (layout: hh.trainer.run_folder).

`TrainingRun` is what hh-train runs and what `hh.train` / `hh.resume` run. It reads as its
steps: check the outputs, record the run, scan and split the data (or read the recorded split
when resuming), build or restore the model, fit phase by phase with a commit after every
epoch (hh.trainer.callbacks), score the best epoch, and close the record. Every epoch is
committed to disk before the next starts, so a kill, Ctrl-C, SIGTERM or a full disk loses at
most the running epoch, and `resume` goes on from there.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import shlex
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import keras
import tensorflow as tf

from ..edge.errors import OutOfSpace, ParameterError, UserError
from ..edge.evaluate import report_not_learned
from ..edge.files import check_not_inside, check_output_dir
from ..edge.signals import HeldInterrupt, held_interrupts
from .callbacks import CommitEpochs, EarlyStopping, EpochProgress, LearningRate, StopAtInterrupt
from .config import TrainConfig
from .models import build_model, compile_model, load_model_file
from .phases import enter_phase, plan_phases
from .run_data import RunData, choose_batch_size, class_weights, describe_classes, input_pipelines, list_data, prepare_data
from .run_folder import CheckpointState, RunFolder
from .run_record import RunRecord

log = logging.getLogger("hh.train")


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

    def lines(self) -> list[str]:
        """The end of a run as hh-train prints it: the best epoch and its evaluation."""
        from ..edge.evaluate import format_metrics

        lines = [
            f"best epoch {self.best_epoch}/{self.epochs_run}: val accuracy {self.best_val_accuracy:.3f}, "
            f"val loss {self.best_val_loss:.4f} ({self.seconds:.0f}s)"
        ]
        if self.evaluation:
            lines.extend(format_metrics(self.evaluation).splitlines())
        return lines

    def __repr__(self) -> str:
        balanced = f", balanced accuracy {self.evaluation['balanced_accuracy']:.3f}" if self.evaluation else ""
        return (
            f"<TrainResult {self.run_dir}: best epoch {self.best_epoch}/{self.epochs_run}, "
            f"val accuracy {self.best_val_accuracy:.3f}{balanced}>"
        )


class TrainingRun:
    """One run folder trained from its configuration, from the start or from its last commit."""

    def __init__(self, config: TrainConfig, resume: bool = False):
        self.config = config.resolved()
        self.config.validate()
        self.resume = resume
        self.folder = RunFolder(self.config.out)

    def run(self) -> TrainResult:
        """Train to the end. Raises KeyboardInterrupt after saving when interrupted (Ctrl-C,
        SIGTERM), OutOfSpace when the disk fills; either way the run stays resumable."""
        from .distribute import resolve_cluster

        config, folder = self.config, self.folder
        cluster = resolve_cluster(config.strategy)  # first: it configures TensorFlow's collectives
        worker = cluster.worker_index
        folder.worker = worker  # an extra worker writes only in its own folder (RunFolder.own_dir)
        self._check_outputs(worker)
        with contextlib.ExitStack() as held:
            if self.resume:
                held.enter_context(folder.locked(worker))  # before anything of the run is touched
            return self._run(cluster, worker, held)

    def _run(self, cluster, worker: int, held: contextlib.ExitStack) -> TrainResult:
        config, folder = self.config, self.folder
        state = self._committed_state(worker, cluster.is_chief)
        if not self.resume:
            list_data(config)  # a wrong folder is refused before the run folder is made
        if state.epochs_done == 0:
            config.check_weights_file()
            if config.resolved_weights == "imagenet":
                from .weights import imagenet_weights

                imagenet_weights(config.arch)  # fetched (or refused, offline) before anything is written
        if config.batch_size is not None and config.batch % cluster.replicas:
            raise ParameterError(
                "batch_size", f"{config.batch_size} (global) does not split evenly over {cluster.replicas} replicas"
            )
        existed = folder.path.exists()
        if not self.resume:
            folder.path.mkdir(parents=True, exist_ok=True)
            held.enter_context(folder.locked(worker))
        record = self._start_record() if cluster.is_chief else None
        started = time.monotonic()
        try:
            data = prepare_data(config, folder, worker, cluster.is_chief)
            if config.batch_size is None:  # from the images the scan kept and the split gave training
                self.config = config = replace(config, batch_size=choose_batch_size(len(data.train), cluster.replicas))
            if cluster.strategy is not None:
                log.info(f"distributed training: {cluster.description}, {cluster.replicas} replicas, global batch {config.batch}")
            model = self._model(state, data, cluster, worker)
            if record is not None:
                record = self._record_data(record, data)
            if self.resume:
                log.info(f"resuming {folder.path} after epoch {state.epochs_done} of {config.total_epochs}")
            log.info(describe_classes(config, data))
            commit = CommitEpochs(folder, state, record, worker)
            interrupted, stopped_early = self._fit(model, cluster, data, commit)
            evaluation = None
            if cluster.is_chief and not interrupted and commit.state.epochs_done:
                from .evaluation import evaluate_best

                evaluation = evaluate_best(folder, data)
        except OutOfSpace as exc:
            done = (folder.read_state(worker) or CheckpointState()).epochs_done
            resume = f"hh-train --resume {shlex.quote(str(folder.path))}"
            raise OutOfSpace(f"{exc}; {folder.path} is saved up to epoch {done}: free some space, then {resume}") from None
        except UserError:
            # Refused before the first epoch (unusable data, --strict): a fresh run folder that
            # holds nothing of value is removed again rather than left as a half-made run.
            if not self.resume and cluster.is_chief and folder.read_state() is None:
                remove_contents(folder, keep_folder=existed)
            raise
        except KeyboardInterrupt:
            self._close_record(
                record and folder.read_record(),
                folder.read_state(worker) or CheckpointState(),
                time.monotonic() - started,
                interrupted=True,
            )
            raise
        seconds = time.monotonic() - started
        self._close_record(commit.record, commit.state, seconds, interrupted, stopped_early, evaluation)
        if interrupted or commit.state.epochs_done == 0:
            raise KeyboardInterrupt
        # A complete run needs its model inputs no more: gigabytes at field scale. (--cache keeps
        # them for later runs; training this run longer decodes them once again.)
        shutil.rmtree(folder.inputs_dir, ignore_errors=True)
        return self._result(commit.state, seconds, stopped_early, evaluation)

    # -- the steps ------------------------------------------------------------------------------
    def _check_outputs(self, worker: int) -> None:
        """Everything that would make the run's results unsaveable, before any work."""
        config, folder = self.config, self.folder
        if self.resume:
            folder.check_resumable(worker)
        else:
            folder.check_new(config, worker)
        if config.cache:
            data = (
                ("training folder", config.data_dir),
                ("validation folder", config.val_dir),
                ("negatives folder", config.negatives),
            )
            # The run folder's own inputs are removed with it; a cache is kept for later runs.
            check_not_inside(config.cache, (*data, ("run folder", config.out)), "cache")
            check_output_dir(config.cache, "cache")

    def _committed_state(self, worker: int, is_chief: bool) -> CheckpointState:
        """Where training goes on from: nothing for a new run; for a resume, the last commit
        (after clearing what a kill left behind), unless the run has nothing left to do."""
        if not self.resume:
            return CheckpointState()
        folder, config = self.folder, self.config
        folder.discard_uncommitted(worker)
        if is_chief:
            folder.repair_publication()
        state = folder.read_state(worker) or CheckpointState()
        recorded = folder.read_record() if folder.is_run() else None
        if recorded is not None and recorded.status == "complete" and config.total_epochs <= recorded.config.total_epochs:
            more = f" (+{config.fine_tune_epochs} fine-tuning)" if config.fine_tune_epochs else ""
            raise ParameterError("epochs", f"{config.epochs}{more} are already done in {folder.path}; give more to train longer")
        if state.epochs_done > config.total_epochs:
            raise ParameterError(
                "epochs", f"{config.total_epochs} is fewer than the {state.epochs_done} epochs already done in {folder.path}"
            )
        # All epochs committed but the run not complete (stopped during the final evaluation):
        # resuming fits nothing more, it evaluates and completes the run.
        return state

    def _start_record(self) -> RunRecord:
        """run.json goes first, before the scan: from here on the folder is a run that --resume accepts."""
        folder = self.folder
        if self.resume:
            record = replace(folder.read_record(), config=self.config)
        else:
            versions = {"tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()}
            record = RunRecord(self.config, status="scanning", versions=versions)
        folder.write_record(record)
        return record

    def _record_data(self, record: RunRecord, data: RunData) -> RunRecord:
        record = replace(
            record,
            config=self.config,  # with the batch size chosen from the data
            status="training",
            class_names=list(data.spec.class_names),
            class_mode=data.spec.class_mode,
            train_images=data.train.counts(),
            val_images=data.val.counts(),
            skipped_files=len(data.split.skipped),
        )
        self.folder.write_record(record)
        return record

    def _model(self, state: CheckpointState, data: RunData, cluster, worker: int):
        """A new model (no epoch committed yet), or the last committed epoch's, optimizer and all."""
        config = self.config
        if state.epochs_done == 0:
            keras.utils.set_random_seed(config.seed)
            with cluster.scope():
                model = build_model(config.arch, data.spec, config.resolved_weights)
                return compile_model(model, data.spec, config.learning_rate, config.optimizer, config.label_smoothing)
        assert state.last_file is not None  # set with the first committed epoch
        with cluster.scope():
            return load_model_file(
                self.folder.checkpoint_dir(worker) / state.last_file,
                "the checkpoint cannot be loaded; this run cannot be resumed: start a new one",
                compile=True,
            )

    def _fit(self, model, cluster, data: RunData, commit: CommitEpochs) -> tuple[bool, bool]:
        """Train phase by phase up to config.total_epochs: (interrupted, stopped early)."""
        train_ds, val_ds = input_pipelines(cluster, data, self.config, commit.state.epochs_done)
        try:
            # Ctrl-C and SIGTERM are held to the start of the next batch (StopAtInterrupt); a
            # second one stops at once.
            with held_interrupts(second_raises=True) as held:
                return False, self._fit_phases(model, cluster, data, commit, (train_ds, val_ds), held)
        except KeyboardInterrupt:
            return True, False

    def _fit_phases(self, model, cluster, data: RunData, commit: CommitEpochs, datasets, held: HeldInterrupt) -> bool:
        """The phases still to run, each a model.fit (or the multi-worker loop): whether early stopping ended them."""
        from .distribute import fit_multiworker

        config = self.config
        train_ds, val_ds = datasets
        weights = class_weights(config, data)
        steps_per_epoch = -(-len(data.train) // config.batch)
        next_begins = 0  # the epoch the next phase starts at: the schedule runs within each phase
        for phase in plan_phases(config):
            start = commit.state.epochs_done
            phase_begins, next_begins = next_begins, phase.end_epoch
            if start >= phase.end_epoch:
                continue
            enter_phase(model, phase, config, data.spec, cluster)
            rate = LearningRate(
                config.schedule, phase.learning_rate, phase_begins, phase.end_epoch, steps_per_epoch, config.warmup_epochs
            )
            callbacks: list[keras.callbacks.Callback] = [
                rate,  # first: the rate is set before anything else sees the step
                commit,
                EpochProgress(commit, config.total_epochs),
                StopAtInterrupt(held),
            ]
            stopper = EarlyStopping(commit, config.patience, start) if config.patience and phase.early_stopping else None
            if stopper:
                callbacks.append(stopper)
            if isinstance(cluster.strategy, tf.distribute.MultiWorkerMirroredStrategy):
                listed = keras.callbacks.CallbackList(callbacks, model=model)
                fit_multiworker(
                    model,
                    cluster,
                    data.spec,
                    train_ds,
                    val_ds,
                    config.batch,
                    phase.end_epoch,
                    start,
                    listed,
                    weights,
                    config.label_smoothing,
                )
            else:
                model.fit(
                    train_ds,
                    validation_data=val_ds,
                    epochs=phase.end_epoch,
                    initial_epoch=start,
                    callbacks=callbacks,
                    class_weight=weights,
                    shuffle=False,  # the dataset shuffles itself, each epoch
                    verbose=0,  # one line per epoch comes from EpochProgress
                )
            if stopper and stopper.stopped:
                return True
        return False

    def _close_record(
        self,
        record: RunRecord | None,
        state: CheckpointState,
        seconds: float,
        interrupted: bool,
        stopped_early: bool = False,
        evaluation: dict | None = None,
    ) -> None:
        """The outcome into run.json, and the training curves beside it (the chief only)."""
        if record is None:
            return
        if state.epochs_done:
            from .plots import plot_curves

            plot_curves(state.history, self.folder.curves_path, title=f"{self.config.arch} on {self.config.data_dir}")
        done = state.epochs_done >= self.config.total_epochs or stopped_early
        evaluation = evaluation or record.evaluation
        warning = report_not_learned(evaluation)
        if warning and evaluation is not record.evaluation:
            log.warning(f"warning: {warning}")
        self.folder.write_record(
            replace(
                record,
                status="complete" if done and not interrupted else "interrupted",
                epochs_done=state.epochs_done,
                stopped_early=stopped_early,
                train_seconds=round(seconds, 1),
                evaluation=evaluation,
                warnings=[warning] if warning else None,
            )
        )

    def _result(self, state: CheckpointState, seconds: float, stopped_early: bool, evaluation: dict | None) -> TrainResult:
        best = state.best_epoch
        return TrainResult(
            run_dir=self.folder.path,
            best_epoch=best,
            best_val_accuracy=state.history["val_accuracy"][best - 1],
            best_val_loss=state.history["val_loss"][best - 1],
            epochs_run=state.epochs_done,
            seconds=seconds,
            history=state.history,
            evaluation=evaluation,
            stopped_early=stopped_early,
        )


def train(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train per `config` into `config.out` (TrainingRun.run)."""
    return TrainingRun(config, resume=resume).run()


def resume(run_dir: str | Path, **changes) -> TrainResult:
    """Continue the run in `run_dir` from its last committed epoch. `changes` are TrainConfig
    fields: `epochs` and `fine_tune_epochs` may grow (to train longer); any other field given
    with a value other than the recorded one is refused. hh-train --resume calls this."""
    folder = RunFolder(run_dir)
    folder.check_resumable()
    recorded = replace(folder.read_config(), out=str(folder.path))  # the folder may have moved since
    return TrainingRun(recorded.with_resume_changes(changes), resume=True).run()


def remove_contents(run: RunFolder, keep_folder: bool) -> None:
    """Empty a run folder this run filled (it was new or empty), and remove it if it was new.
    Extra workers' own folders (checkpoint/worker-N/) are theirs to keep."""
    folder = run.path
    for path in folder.iterdir():
        if run.holds_only_workers(path):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    if not keep_folder:
        with contextlib.suppress(OSError):
            folder.rmdir()
