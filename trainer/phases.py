"""The phases of a training run, as data: which epochs, at what learning rate, training what.

A network trained from scratch has one phase. A pretrained backbone has two when fine-tuned:
the new classifier on a frozen backbone for `epochs`, then the backbone's top layers too for
`fine_tune_epochs` more, at a tenth of the learning rate (large steps would wreck what
ImageNet taught them). Early stopping applies to the last phase only, so the head's phase
keeps its length and the epoch numbers alone say which phase a run (and a resume) is in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .config import TrainConfig

log = logging.getLogger("hh.train")
FINE_TUNE_LR_FACTOR = 0.1


@dataclass(frozen=True)
class Phase:
    name: str
    end_epoch: int  # the run's epoch count when the phase ends
    learning_rate: float
    unfreeze_top: int | None = None  # the backbone's last layers that train in this phase
    early_stopping: bool = True  # --patience applies in this phase


def plan_phases(config: TrainConfig) -> list[Phase]:
    if not config.fine_tune_epochs:
        return [Phase("train", config.epochs, config.learning_rate)]
    return [
        Phase("head", config.epochs, config.learning_rate, early_stopping=False),
        Phase("fine-tune", config.total_epochs, config.learning_rate * FINE_TUNE_LR_FACTOR, unfreeze_top=config.fine_tune_layers),
    ]


def enter_phase(model, phase: Phase, config: TrainConfig, spec, cluster) -> None:
    """Make the model train what `phase` trains (a no-op when it already does: a resume inside
    the phase restored a model that was switched before)."""
    from .models import BACKBONE, compile_model, unfreeze_top

    if phase.unfreeze_top is None or model.get_layer(BACKBONE).trainable:
        return
    with cluster.scope():
        layers = unfreeze_top(model, phase.unfreeze_top)
        compile_model(model, spec, phase.learning_rate, config.optimizer, config.label_smoothing)
    log.info(f"fine-tuning the backbone's last {phase.unfreeze_top} layers ({layers} with weights) at lr {phase.learning_rate:g}")
