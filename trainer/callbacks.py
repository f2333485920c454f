"""What happens after each epoch, one concern per Keras callback (run in this order):

    CommitEpochs    the checkpoint is committed, then (the chief) model.keras, history.csv and
                    run.json are published from it: a kill loses at most the running epoch
    EpochProgress   one line per epoch on hh's log
    EarlyStopping   --patience, counted within the last phase
    LearningRate    --schedule and --warmup-epochs: the rate for each step, set before it
    StopAtInterrupt Ctrl-C or SIGTERM, held by the training loop, ends it before the next batch

The multi-worker loop (hh.trainer.distribute) calls the same callbacks.
"""

from __future__ import annotations

import logging
import math
import time

import keras

from ..edge.signals import HeldInterrupt, deferred_interrupt
from .run_folder import CheckpointState, RunFolder
from .run_record import RunRecord

log = logging.getLogger("hh.train")


class CommitEpochs(keras.callbacks.Callback):
    """Commit every epoch to the run folder; `state` and `record` are what is on disk."""

    def __init__(self, run: RunFolder, state: CheckpointState, record: RunRecord | None, worker: int):
        super().__init__()
        self.run, self.state, self.record, self.worker = run, state, record, worker

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        with deferred_interrupt():  # an interrupt lands after the commit, on a consistent folder
            self.state = self.run.commit_epoch(self.state, logs or {}, self.model.save, self.worker)
            if self.record is not None:  # only the chief publishes
                self.record = self.run.publish(self.state, self.record)


def epoch_line(state: CheckpointState, epochs: int, seconds: float) -> str:
    h = {key: values[-1] for key, values in state.history.items()}
    best = " (best so far)" if state.best_epoch == state.epochs_done else ""
    return (
        f"epoch {state.epochs_done}/{epochs}: loss {h['loss']:.4f} accuracy {h['accuracy']:.3f}, "
        f"val loss {h['val_loss']:.4f} val accuracy {h['val_accuracy']:.3f} ({seconds:.1f}s){best}"
    )


class EpochProgress(keras.callbacks.Callback):
    """One line per committed epoch: losses, accuracies, time, and whether it is the best."""

    def __init__(self, committed: CommitEpochs, total_epochs: int):
        super().__init__()
        self.committed, self.total_epochs = committed, total_epochs
        self._started = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        log.info(epoch_line(self.committed.state, self.total_epochs, time.monotonic() - self._started))


class EarlyStopping(keras.callbacks.Callback):
    """Stop after `patience` epochs without a better validation loss than the best so far
    (the committed state's), counting from `phase_start`."""

    def __init__(self, committed: CommitEpochs, patience: int, phase_start: int):
        super().__init__()
        self.committed, self.patience, self.phase_start = committed, patience, phase_start
        self.stopped = False

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        state = self.committed.state
        waited = state.epochs_done - max(state.best_epoch, self.phase_start)
        if waited >= self.patience:
            log.info(f"no better val loss for {waited} epochs (--patience {self.patience}): stopping early")
            self.stopped = True
            self.model.stop_training = True


class StopAtInterrupt(keras.callbacks.Callback):
    """End training before the next batch once Ctrl-C or SIGTERM came (`held`, from
    hh.edge.signals.held_interrupts): between two of TensorFlow's steps, never inside one. The
    running epoch is lost; the committed ones stay.

    The batch *begin* hooks: Keras calls them in the main thread at every batch, where an end
    hook would make it wait for each batch's results."""

    def __init__(self, held: HeldInterrupt):
        super().__init__()
        self.held = held

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.held.raise_if_received()

    def on_train_batch_begin(self, batch: int, logs=None) -> None:
        self.held.raise_if_received()

    def on_test_batch_begin(self, batch: int, logs=None) -> None:
        self.held.raise_if_received()


def scheduled_rate(schedule: str, base: float, step: int, total_steps: int, warmup_steps: int) -> float:
    """The learning rate at `step` (0-based) of a phase of `total_steps`: a linear rise from 0 over
    the warm-up (its first step already above 0), then `base` (constant) or a cosine from `base`
    towards 0, which the step after the last would reach (cosine)."""
    if warmup_steps and step < warmup_steps:
        return base * (step + 1) / warmup_steps
    if schedule == "constant":
        return base
    remaining = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / remaining, 1.0)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


class LearningRate(keras.callbacks.Callback):
    """Set the optimizer's learning rate before every training step, from the step's place in its
    phase (epochs `start`..`end`). Computed from the epoch and batch, not kept: a resumed run
    (or one resumed to train longer) takes up the schedule where its epochs say it is."""

    def __init__(self, schedule: str, base: float, start: int, end: int, steps_per_epoch: int, warmup_epochs: int):
        super().__init__()
        self.schedule, self.base, self.start, self.end = schedule, base, start, end
        self.steps_per_epoch, self.warmup_epochs = max(steps_per_epoch, 1), warmup_epochs
        self._epoch = start

    def rate(self, epoch: int, batch: int) -> float:
        step = (epoch - self.start) * self.steps_per_epoch + batch
        total = (self.end - self.start) * self.steps_per_epoch
        warmup = min(self.warmup_epochs, self.end - self.start) * self.steps_per_epoch
        return scheduled_rate(self.schedule, self.base, step, total, warmup)

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._epoch = epoch

    def on_train_batch_begin(self, batch: int, logs=None) -> None:
        self.model.optimizer.learning_rate = self.rate(self._epoch, batch)
