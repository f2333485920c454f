"""ImageNet weights for the pretrained backbones: from Keras' cache, fetched on first use.

Keras downloads them on first use into ~/.keras/models/ (or $KERAS_HOME/models/). A
workstation that is offline cannot, so the error names the file to fetch elsewhere and the
`--weights PATH` alternative. HH_WEIGHTS_MIRROR points the fetch at a site's own mirror (a
folder URL holding the same file names) instead of Google's storage.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..edge.errors import UserError

# arch -> (file name, folder URL): the "no top" files keras.applications itself would fetch.
IMAGENET_FILES = {
    "mobilenetv3small": (
        "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
        "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/",
    ),
    "mobilenetv3large": (
        "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
        "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/",
    ),
    "efficientnetb0": ("efficientnetb0_notop.h5", "https://storage.googleapis.com/keras-applications/"),
}


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def imagenet_weights(arch: str) -> Path:
    """The local file of `arch`'s ImageNet weights, fetching it into Keras' cache if needed."""
    file_name, folder_url = IMAGENET_FILES[arch]
    cached = keras_cache_dir() / file_name
    if cached.is_file():
        return cached
    url = os.environ.get("HH_WEIGHTS_MIRROR", folder_url).rstrip("/") + "/" + file_name
    import contextlib
    import io
    import logging

    import keras

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # Keras' own download chatter
            path = Path(keras.utils.get_file(file_name, url, cache_subdir="models"))
    except Exception:  # noqa: BLE001 - every fetch failure means the same to the user
        raise UserError(
            f"cannot fetch the ImageNet weights {file_name} from {url} (offline?); on a machine that is online, "
            f"download that file and put it in {keras_cache_dir()}/, or give it with {{param:weights}} PATH"
        ) from None
    logging.getLogger("hh.train").info(f"fetched {file_name} into {path.parent}/ (once: later runs use it from there)")
    return path
