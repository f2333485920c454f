"""hh: train an image classifier on a workstation, run it on a Raspberry Pi or a phone.

The whole flow from Python, in the names the commands use:

    import hh
    result = hh.train("data/train", val_dir="data/validation", out="models/run1", arch="edge", image_size=128)
    report = hh.convert("models/run1", mode="int8")          # -> models/run1/model_int8.tflite, verified
    classifier = hh.Classifier("models/run1/model_int8.tflite")
    print(classifier.classify(cv2.imread("leaf.jpg")).label)
    print(hh.evaluate(classifier, "data/validation").accuracy)

Names load lazily: `import hh` costs nothing, and the device-side names (Classifier,
evaluate, PreprocessingSpec, errors) never import TensorFlow. The first name used keeps the
libraries' chatter (TensorFlow's, absl's, OpenCV's notes, their warnings) off the caller's
screen, as the commands do; HH_VERBOSE=1 in the environment keeps it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

from hh.edge.lazy import lazy_exports
from hh.edge.quiet import native_output_captured, quiet_libraries

# public name -> (module, attribute)
_EXPORTS = {
    # workstation (TensorFlow)
    "train": ("hh.trainer.api", "train"),
    "resume": ("hh.trainer.api", "resume"),
    "convert": ("hh.trainer.api", "convert"),
    "TrainConfig": ("hh.trainer.config", "TrainConfig"),
    "TrainResult": ("hh.trainer.train", "TrainResult"),
    "RunFolder": ("hh.trainer.run_folder", "RunFolder"),
    "ConversionReport": ("hh.converters.pipeline", "ConversionReport"),
    # device (numpy + OpenCV + LiteRT)
    "Classifier": ("hh.edge.runtime", "Classifier"),
    "CameraSession": ("hh.edge.session", "CameraSession"),
    "CameraOptions": ("hh.edge.session", "CameraOptions"),
    "Classification": ("hh.edge.runtime", "Classification"),
    "evaluate": ("hh.edge.evaluate", "evaluate"),
    "Evaluation": ("hh.edge.evaluate", "Evaluation"),
    "PreprocessingSpec": ("hh.edge.spec", "PreprocessingSpec"),
    "read_image": ("hh.edge.preprocess", "read_image_bgr"),
    "Leaf": ("hh.edge.plant", "Leaf"),
    "plant_verdict": ("hh.edge.plant", "plant_verdict"),
    # errors
    "HHError": ("hh.edge.errors", "HHError"),
    "UserError": ("hh.edge.errors", "UserError"),
    "VerificationFailed": ("hh.edge.errors", "VerificationFailed"),
}

_lazy_getattr, __dir__, __all__ = lazy_exports("hh", _EXPORTS)


# Names whose modules import TensorFlow, which prints its notes from native code at import.
_WORKSTATION = {"train", "resume", "convert", "TrainResult", "ConversionReport"}


def __getattr__(name: str):
    if name in _EXPORTS and os.environ.get("HH_VERBOSE") != "1":
        quiet_libraries(all_warnings=False)
        if name in _WORKSTATION and "tensorflow" not in sys.modules:
            with contextlib.suppress(ImportError), native_output_captured():
                import tensorflow  # noqa: F401 - imported here, its import-time notes captured
    return _lazy_getattr(name)


if TYPE_CHECKING:  # for editors and type checkers; nothing here runs
    from hh.converters.pipeline import ConversionReport
    from hh.edge.errors import HHError, UserError, VerificationFailed
    from hh.edge.evaluate import Evaluation, evaluate
    from hh.edge.plant import Leaf, plant_verdict
    from hh.edge.preprocess import read_image_bgr as read_image
    from hh.edge.runtime import Classification, Classifier
    from hh.edge.session import CameraOptions, CameraSession
    from hh.edge.spec import PreprocessingSpec
    from hh.trainer.api import convert, resume, train
    from hh.trainer.config import TrainConfig
    from hh.trainer.run_folder import RunFolder
    from hh.trainer.train import TrainResult
