"""What determines a training run, and the checks on it. stdlib only: run.json holds it, and
reading a run folder (the converter, benchmarks) must not need TensorFlow."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..edge.errors import ParameterError
from ..edge.options import option
from ..edge.spec import ASPECTS, INTERPOLATIONS
from ..edge.spec import CLASS_MODES as SPEC_CLASS_MODES

# Trained from scratch: the default for field photos, a 17k-weight net for the smallest devices,
# and the classic course's convnet.
SCRATCH_ARCHS = ("sepnet", "edge", "seed")
# Pretrained backbones from Keras applications (transfer learning), each taking raw 0-255 RGB.
BACKBONES = ("mobilenetv3small", "mobilenetv3large", "efficientnetb0")
ARCH_NAMES = SCRATCH_ARCHS + BACKBONES  # hh.trainer.models registers a builder for each
# The smallest input each network's downsampling leaves a feature map for: seed's three
# valid 3x3 convs with 2x2 pools need 22 px; the others downsample 32 times.
MIN_IMAGE_SIZE = {"seed": 22, "edge": 32, "sepnet": 32, **{name: 32 for name in BACKBONES}}
AUGMENTS = ("none", "light", "field", "strong")
CLASS_WEIGHTS = ("none", "balanced")
OPTIMIZERS = ("rmsprop", "adam")
SCHEDULES = ("cosine", "constant")
STRATEGIES = ("auto", "none", "mirrored", "multiworker")
CLASS_MODES = ("auto", *SPEC_CLASS_MODES)  # auto: binary for two classes, else categorical
# The batch size hh chooses: the largest power of two that gives an epoch at least MIN_STEPS
# steps, within these bounds. The course's 128 gave 240 images 2 steps an epoch: 30 updates in
# 15 epochs, and a model at chance. 64 at most: CPU training gains nothing from more, and memory does.
AUTO_BATCH = (8, 64)
MIN_STEPS = 16


def auto_batch_size(training_images: int, replicas: int = 1) -> int:
    """The batch size for this many training images (a multiple of the replicas)."""
    low, high = AUTO_BATCH
    size = low
    while size * 2 <= high and training_images / (size * 2) >= MIN_STEPS:
        size *= 2
    return -(-size // replicas) * replicas


# What --resume may change: training longer is the point of resuming. Anything else would
# make the resumed run something the recorded configuration does not describe.
# How much RAM holds the model inputs changes no result: a run may go on on another machine.
RESUMABLE_CHANGES = ("epochs", "fine_tune_epochs", "ram_budget")


# What a run.json written before these fields existed trained with (a resume goes on so).
RECORDED_BEFORE = {"optimizer": "rmsprop", "schedule": "constant", "warmup_epochs": 0, "label_smoothing": 0.0}


@dataclass
class TrainConfig:
    """Everything that determines a run. hh-train's flags are these fields (one declaration:
    type, default and help), and run.json records them.

    The defaults train for the device: the 17k-weight edge net at 300 px, 15 epochs, RMSprop at
    0.001, and a batch size chosen from the number of training images (AUTO_BATCH). The classic
    Keras course is `arch="seed", batch_size=128` (its 3-block convnet; the rest are its own).
    """

    data_dir: str
    out: str
    val_dir: str | None = option(None, "Validation folder with the same class sub-folders.")
    val_split: float | None = option(
        None, "Hold out this fraction of DATA_DIR per class instead (default 0.2 without --val-dir)."
    )
    negatives: str | None = option(
        None,
        "Folder of photos that are none of the classes (soil, hands, other plants), at any depth: trained as "
        "the class 'unknown' (a fifth held out for validation with --val-dir).",
    )
    image_size: int = option(160, "Images are resized to SIZE x SIZE pixels.")
    batch_size: int | None = option(
        None,
        "Images per training step (over all replicas); default: from the number of training images, "
        "8 to 64, so that an epoch has at least 16 steps.",
    )
    epochs: int = option(100, "Passes over the training data; with --resume, the new total.")
    learning_rate: float = option(
        0.002, "Learning rate of the optimizer (--optimizer); fine-tuning a backbone uses a tenth.", ("--lr",)
    )
    arch: str = option(
        "sepnet",
        f"{', '.join(ARCH_NAMES)}: 'sepnet' is a 0.3M-weight separable residual net chosen on real field photos, "
        "'edge' a 17k-weight net for the smallest devices, 'seed' the classic Keras course's 3-block convnet "
        "(40M weights at 300 px), the others pretrained backbones (transfer learning).",
    )
    seed: int = option(0, "Random seed for weights, shuffling and --val-split.")
    class_mode: str = option("auto", "auto: binary (1 sigmoid) for 2 classes, else categorical (softmax).")
    aspect: str = option("squash", f"How to fit images to a square: {' or '.join(ASPECTS)} (centre-crop).")
    interpolation: str = option("bilinear", f"Resize interpolation: {', '.join(INTERPOLATIONS)}.")
    strict: bool = option(False, "Refuse to train when any image is unusable, instead of skipping it.", ("--strict",))
    strategy: str = option(
        "auto",
        f"{', '.join(STRATEGIES)}: mirrored uses this machine's GPUs, multiworker the machines in TF_CONFIG.",
    )  # see hh.trainer.distribute
    cache: str | None = option(
        None,
        "Write the model inputs to a file in this folder instead of keeping them in RAM; later runs on the same "
        "images (same size and resize settings) read them from there without decoding.",
    )
    ram_budget: float | None = option(
        None,
        "GB of model inputs to keep in RAM (default: half the memory this machine or container allows); "
        "beyond it they are written once to a file in the run folder and read from there every epoch.",
    )
    # "field" by default: field photos differ in angle, distance and light from any training set;
    # measured one transform at a time on real field photos (BENCHMARKS.md 18).
    augment: str = option(
        "field",
        f"{', '.join(AUGMENTS)}: random flips, rotations, zoom, shifts and light changes of training images "
        "(never of validation images; none in the exported model).",
    )
    weights: str | None = option(
        None, "Backbones: imagenet (their default; fetched once, then cached), none (from scratch) or a .h5 file."
    )
    fine_tune_epochs: int = option(
        0, "Backbones: after --epochs of training the head, this many with the backbone's top unfrozen."
    )
    fine_tune_layers: int = option(20, "Backbones: how many of its last layers fine-tuning trains.")
    class_weight: str = option(
        "none", f"{' or '.join(CLASS_WEIGHTS)}: balanced weighs each class by 1 / its share of the images."
    )
    patience: int | None = option(
        None, "Stop after this many epochs without a better validation loss (a backbone: in fine-tuning)."
    )
    optimizer: str = option("adam", f"{' or '.join(OPTIMIZERS)}.")
    schedule: str = option(
        "cosine",
        f"{' or '.join(SCHEDULES)}: the learning rate over the run; cosine decays it to 0 by the last epoch "
        "(a resumed run that trains longer stretches it over the new total).",
    )
    warmup_epochs: int = option(2, "Epochs at the start over which the learning rate rises from 0 to --lr.")
    label_smoothing: float = option(
        0.1, "Smooth the training labels by F: the right class aims at 1 - F + F/classes instead of 1 (less overconfident)."
    )

    def resolved(self) -> TrainConfig:
        """The same configuration with every path absolute, so run.json works from any folder."""

        def absolute(path: str) -> str:
            return str(Path(path).expanduser().absolute())

        for name in ("val_dir", "negatives", "cache"):
            if getattr(self, name) is not None and not str(getattr(self, name)).strip():
                raise ParameterError(name, "is empty: give a folder")  # "" would be this folder

        def absolute_or_none(path: str | None) -> str | None:
            return None if path is None else absolute(path)

        weights = self.weights if self.weights in (None, "imagenet", "none") else absolute_or_none(self.weights)
        return replace(
            self,
            data_dir=absolute(self.data_dir),
            out=absolute(self.out),
            val_dir=absolute_or_none(self.val_dir),
            negatives=absolute_or_none(self.negatives),
            cache=absolute_or_none(self.cache),
            weights=weights,
        )

    def check_weights_file(self) -> None:
        """A --weights file must exist when a run starts (a resumed run has them in its checkpoint)."""
        weights = self.resolved_weights
        if weights not in ("imagenet", "none") and not Path(weights).is_file():
            raise ParameterError("weights", f"{weights}: no such weights file (give imagenet, none or a .h5 file)")

    @property
    def total_epochs(self) -> int:
        """Head epochs plus fine-tuning epochs (the second phase, backbones only)."""
        return self.epochs + self.fine_tune_epochs

    @property
    def batch(self) -> int:
        """The batch size, once chosen: a run chooses it (when not given) before anything reads it."""
        if self.batch_size is None:
            raise ValueError("the batch size is chosen when the run starts")
        return self.batch_size

    @property
    def is_backbone(self) -> bool:
        return self.arch in BACKBONES

    @property
    def resolved_weights(self) -> str:
        """ "imagenet", "none" or a path: what the network starts from."""
        if self.weights is None:
            return "imagenet" if self.is_backbone else "none"
        return self.weights

    def validate(self) -> None:
        if self.arch not in ARCH_NAMES:
            raise ParameterError("arch", f"{self.arch!r} is unknown; choose one of {', '.join(ARCH_NAMES)}")
        if self.val_dir and self.val_split is not None:
            raise ParameterError("val_split", "cannot be given with {param:val_dir}: give one or the other")
        if self.val_dir:
            # Resolved: data/../data/train or a link to the training folder is the training folder.
            val, data = Path(self.val_dir).resolve(), Path(self.data_dir).resolve()
            if val == data or data in val.parents or val in data.parents:
                raise ParameterError(
                    "val_dir", "is the training folder itself, or inside it, or holds it; validation images must be other images"
                )
        if self.negatives:
            negatives = Path(self.negatives).resolve()
            for name, folder in (("data_dir", self.data_dir), ("val_dir", self.val_dir)):
                other = Path(folder).resolve() if folder else None
                if other is not None and (negatives == other or other in negatives.parents or negatives in other.parents):
                    raise ParameterError(
                        "negatives", f"is {{param:{name}}} itself, or inside it, or holds it; negatives must be other images"
                    )
            if self.class_mode == "binary":
                raise ParameterError(
                    "negatives",
                    "become a class 'unknown' beside the others, which a binary model cannot have; "
                    "leave out {param:class_mode} binary",
                )
        minimum_size = MIN_IMAGE_SIZE[self.arch]
        for name, value, low in (
            ("epochs", self.epochs, 1),
            ("batch_size", 1 if self.batch_size is None else self.batch_size, 1),
            ("image_size", self.image_size, minimum_size),
        ):
            if not isinstance(value, int) or value < low:
                why = f" for {{param:arch}} {self.arch}" if name == "image_size" else ""
                raise ParameterError(name, f"must be at least {low}{why}, got {value}")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ParameterError("learning_rate", f"must be a positive number, got {self.learning_rate}")
        if self.strategy not in STRATEGIES:
            raise ParameterError("strategy", f"must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.class_mode not in CLASS_MODES:
            raise ParameterError("class_mode", f"must be one of {', '.join(CLASS_MODES)}, got {self.class_mode!r}")
        if self.aspect not in ASPECTS:
            raise ParameterError("aspect", f"must be one of {', '.join(ASPECTS)}, got {self.aspect!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ParameterError("interpolation", f"must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        for name, allowed in (
            ("augment", AUGMENTS),
            ("class_weight", CLASS_WEIGHTS),
            ("optimizer", OPTIMIZERS),
            ("schedule", SCHEDULES),
        ):
            if getattr(self, name) not in allowed:
                raise ParameterError(name, f"must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        weights = self.resolved_weights
        if not self.is_backbone and weights != "none":
            raise ParameterError("weights", f"applies to the pretrained backbones ({', '.join(BACKBONES)}), not {self.arch}")
        if self.fine_tune_epochs < 0 or self.fine_tune_layers < 1:
            raise ParameterError("fine_tune_epochs", "must be 0 or more, and {param:fine_tune_layers} at least 1")
        if self.fine_tune_epochs and not (self.is_backbone and weights != "none"):
            raise ParameterError(
                "fine_tune_epochs", "needs a pretrained backbone (a network trained from scratch trains whole from the start)"
            )
        if not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 0:
            raise ParameterError("warmup_epochs", f"must be 0 or more, got {self.warmup_epochs}")
        if not (isinstance(self.label_smoothing, (int, float)) and 0 <= self.label_smoothing < 1):
            raise ParameterError("label_smoothing", f"must be at least 0 and below 1, got {self.label_smoothing}")
        if self.patience is not None and self.patience < 1:
            raise ParameterError("patience", f"must be at least 1, got {self.patience}")
        if self.ram_budget is not None and not (
            isinstance(self.ram_budget, (int, float)) and self.ram_budget >= 0 and math.isfinite(self.ram_budget)
        ):
            raise ParameterError("ram_budget", f"must be a number of GB, 0 or more, got {self.ram_budget}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
        # A run recorded before a field existed trained as hh did then, not as today's default.
        return cls(**{**RECORDED_BEFORE, **data})

    def with_resume_changes(self, changes: dict[str, object]) -> TrainConfig:
        """This recorded configuration with what a resume may change (RESUMABLE_CHANGES); any
        other given value that differs from the recorded one is refused. None means not given;
        paths are compared made absolute."""
        names = {f.name for f in fields(self)}
        given = {name: value for name, value in changes.items() if value is not None}
        unknown = sorted(set(given) - names)
        if unknown:
            raise ParameterError(unknown[0], "is not a training option")
        values: dict[str, Any] = {k: str(v) if isinstance(v, Path) else v for k, v in given.items()}
        updated = replace(self, **values).resolved()
        for name in given:
            if name not in RESUMABLE_CHANGES and getattr(updated, name) != getattr(self, name):
                raise ParameterError(
                    name,
                    f"cannot change when resuming (the run was started with {getattr(self, name)!r}); "
                    "start a new run to change it",
                )
        updated.validate()
        return updated
