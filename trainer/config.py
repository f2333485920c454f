"""What determines a training run, and the checks on it. stdlib only: run.json holds it, and
reading a run folder (the converter, benchmarks) must not need TensorFlow."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from ..edge.errors import ParameterError
from ..edge.spec import ASPECTS, INTERPOLATIONS

# Trained from scratch: the classic course's convnet and a 17k-weight net for devices.
SCRATCH_ARCHS = ("seed", "edge")
# Pretrained backbones from Keras applications (transfer learning), each taking raw 0-255 RGB.
BACKBONES = ("mobilenetv3small", "mobilenetv3large", "efficientnetb0")
ARCH_NAMES = SCRATCH_ARCHS + BACKBONES  # hh.trainer.models registers a builder for each
# The smallest input each network's downsampling leaves a feature map for: seed's three
# valid 3x3 convs with 2x2 pools need 22 px; the others downsample 32 times.
MIN_IMAGE_SIZE = {"seed": 22, "edge": 32, **{name: 32 for name in BACKBONES}}
AUGMENTS = ("none", "light", "strong")
CLASS_WEIGHTS = ("none", "balanced")
OPTIMIZERS = ("rmsprop", "adam")
STRATEGIES = ("auto", "none", "mirrored", "multiworker")
CLASS_MODES = ("auto", "binary", "categorical")
# What --resume may change: training longer is the point of resuming. Anything else would
# make the resumed run something the recorded configuration does not describe.
RESUMABLE_CHANGES = ("epochs", "fine_tune_epochs")


@dataclass
class TrainConfig:
    """Everything that determines a run.

    The defaults are the classic Keras course's: 300 px images, batch 128, 15 epochs, RMSprop
    at 0.001, on its 3-block convnet (`arch="seed"`).
    """

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
    strategy: str = "auto"  # see hh.trainer.distribute
    cache: str | None = None  # folder for an on-disk cache of decoded images (default: RAM if it fits)
    # Random flips, rotations, zoom, shifts and light changes of training images (hh.trainer.augment).
    # "light" by default: field photos differ in angle, distance and light from any training
    # set, and light changes never make a leaf look like another class.
    augment: str = "light"
    # Backbones: "imagenet" (the default for them), "none" (from scratch) or a weights file.
    weights: str | None = None
    fine_tune_epochs: int = 0  # backbones: epochs after the head's, with the backbone's top unfrozen
    fine_tune_layers: int = 20  # how many of the backbone's last layers fine-tuning trains
    class_weight: str = "none"  # "balanced": weigh each class by 1 / its share of the images
    patience: int | None = None  # stop after this many epochs without a better val_loss
    optimizer: str = "rmsprop"

    def resolved(self) -> TrainConfig:
        """The same configuration with every path absolute, so run.json works from any folder."""

        def absolute(path: str | None) -> str | None:
            return None if path is None else str(Path(path).expanduser().absolute())

        weights = self.weights if self.weights in (None, "imagenet", "none") else absolute(self.weights)
        return replace(
            self,
            data_dir=absolute(self.data_dir),
            out=absolute(self.out),
            val_dir=absolute(self.val_dir),
            cache=absolute(self.cache),
            weights=weights,
        )

    @property
    def total_epochs(self) -> int:
        """Head epochs plus fine-tuning epochs (the second phase, backbones only)."""
        return self.epochs + self.fine_tune_epochs

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
        if self.val_dir and Path(self.val_dir).absolute() == Path(self.data_dir).absolute():
            raise ParameterError("val_dir", "is the training folder itself; validation images must be other images")
        minimum_size = MIN_IMAGE_SIZE[self.arch]
        for name, value, low in (
            ("epochs", self.epochs, 1),
            ("batch_size", self.batch_size, 1),
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
        for name, allowed in (("augment", AUGMENTS), ("class_weight", CLASS_WEIGHTS), ("optimizer", OPTIMIZERS)):
            if getattr(self, name) not in allowed:
                raise ParameterError(name, f"must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        weights = self.resolved_weights
        if not self.is_backbone and weights != "none":
            raise ParameterError("weights", f"applies to the pretrained backbones ({', '.join(BACKBONES)}), not {self.arch}")
        if weights not in ("imagenet", "none") and not Path(weights).is_file():
            raise ParameterError("weights", f"{weights}: no such weights file (give imagenet, none or a .h5 file)")
        if self.fine_tune_epochs < 0 or self.fine_tune_layers < 1:
            raise ParameterError("fine_tune_epochs", "must be 0 or more, and {param:fine_tune_layers} at least 1")
        if self.fine_tune_epochs and not (self.is_backbone and weights != "none"):
            raise ParameterError(
                "fine_tune_epochs", "needs a pretrained backbone (a network trained from scratch trains whole from the start)"
            )
        if self.patience is not None and self.patience < 1:
            raise ParameterError("patience", f"must be at least 1, got {self.patience}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**data)

    def with_resume_changes(self, changes: dict[str, object]) -> TrainConfig:
        """This recorded configuration with what a resume may change; anything else is refused."""
        for name, value in changes.items():
            if value is None or value == getattr(self, name):
                continue
            if name not in RESUMABLE_CHANGES:
                raise ParameterError(
                    name,
                    f"cannot change when resuming (the run was started with {getattr(self, name)!r}); "
                    "start a new run to change it",
                )
        updated = replace(self, **{k: v for k, v in changes.items() if v is not None})
        updated.validate()
        return updated
