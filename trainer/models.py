"""Model builders, by name. Every model takes raw 0-255 RGB and scales it itself.

Keeping the scale inside the model is what lets a full-int8 TFLite model take uint8 camera
pixels directly: the converter folds it into the input quantization. The networks trained
from scratch start with Rescaling(1/255); the pretrained backbones (Keras applications) carry
their own input scaling, so they take the same raw pixels and keep the same contract.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
from keras import layers

from ..edge.errors import OutOfSpace, ParameterError, UserError, caused_by_full_disk, first_line
from ..edge.spec import PreprocessingSpec
from .config import ARCH_NAMES

Builder = Callable[..., keras.Model]  # (spec, weights) -> model
ARCHITECTURES: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def add(builder: Builder) -> Builder:
        ARCHITECTURES[name] = builder
        return builder

    return add


def _inputs(spec: PreprocessingSpec):
    inputs = keras.Input(shape=(spec.height, spec.width, 3), name="image")
    return inputs, layers.Rescaling(1.0 / 255, name="rescale")(inputs)


def _head(x, spec: PreprocessingSpec):
    if spec.class_mode == "binary":
        return layers.Dense(1, activation="sigmoid", name="probability")(x)
    return layers.Dense(spec.num_classes, activation="softmax", name="probabilities")(x)


@register("seed")
def build_seed(spec: PreprocessingSpec, weights: str = "none") -> keras.Model:
    """The classic Keras course's convnet: three Conv/MaxPool blocks (16/32/64 filters, 3x3,
    relu), Flatten, Dense 512 relu, classifier."""
    inputs, x = _inputs(spec)
    for filters in (16, 32, 64):
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(512, activation="relu")(x)
    return keras.Model(inputs, _head(x, spec), name="seed")


@register("edge")
def build_edge(spec: PreprocessingSpec, weights: str = "none") -> keras.Model:
    """A convnet for CPUs at the edge, trained from scratch (no downloadable weights here).

    The seed network flattens its last feature map into Dense 512: at 300 px that is ~40M
    weights, a 40 MB int8 file. Here a strided stem and early pooling cut the pixels first,
    depthwise-separable convolutions (~8x fewer multiply-adds than full 3x3) do the deeper
    work, and global max pooling feeds the classifier, so the model is ~17k weights at any
    input size. Max, not average, pooling: a disease is a few lesions somewhere on a leaf, and
    "is it anywhere" is a max.

    Choices measured on the synthetic leaf set, 128 px, 800 training images: with
    BatchNormalization the validation answer collapsed to one class (moving statistics drifted
    from batch statistics on so few steps); separable blocks with default glorot init did not
    learn at all in 10 epochs, with he_uniform they do; global average pooling learned slower.
    """
    inputs, x = _inputs(spec)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="stem")(x)
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv")(x)
    x = layers.MaxPooling2D(2, name="conv_pool")(x)
    for filters in (64, 128):
        x = layers.SeparableConv2D(
            filters,
            3,
            padding="same",
            activation="relu",
            depthwise_initializer="he_uniform",
            pointwise_initializer="he_uniform",
            name=f"sep{filters}",
        )(x)
        x = layers.MaxPooling2D(2, name=f"sep{filters}_pool")(x)
    x = layers.GlobalMaxPooling2D(name="global_max")(x)
    return keras.Model(inputs, _head(x, spec), name="edge")


# sepnet's stages: (filters, blocks); each stage halves the feature map with a strided
# separable convolution, then adds residual separable blocks at that size.
SEPNET_STAGES = ((48, 1), (96, 2), (192, 2), (384, 2))
# BatchNormalization's moving statistics: Keras' 0.99 needs hundreds of steps to settle (a few
# hundred field photos give ~30 steps an epoch, and validation saw chance for the first epochs);
# 0.9 settles in tens of steps.
BN_MOMENTUM = 0.9


def _conv_bn_relu(x, conv, name: str):
    x = conv(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


@register("sepnet")
def build_sepnet(spec: PreprocessingSpec, weights: str = "none") -> keras.Model:
    """The default network: a depthwise-separable residual convnet for photos taken in a field,
    trained from scratch (0.31M weights; 0.61 MB int8 with hh-convert's `unknown` statistics).

    A strided 3x3 stem, then four stages at 1/4, 1/8, 1/16 and 1/32 of the input, each a strided
    separable convolution and residual separable blocks, every convolution followed by
    BatchNormalization and ReLU; global average pooling, dropout 0.2, the classifier. Measured on
    real field photos of bean leaves (BENCHMARKS.md 17): with the default recipe the 17k-weight
    edge net reaches 0.902 there, this one 0.936 (0.8 ms a camera frame against 0.6).
    Separable convolutions keep it at a device's cost (BatchNormalization folds into the
    convolutions when converted): plain 3x3 convolutions of the same width trained 4x slower an
    epoch on this CPU, too slow for the default's time budget, so their accuracy was not measured.
    """
    inputs, x = _inputs(spec)
    x = _conv_bn_relu(x, layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem"), "stem")
    for stage, (filters, blocks) in enumerate(SEPNET_STAGES, start=1):
        name = f"stage{stage}"
        x = _conv_bn_relu(x, layers.SeparableConv2D(filters, 3, strides=2, padding="same", use_bias=False, name=name), name)
        for block in range(1, blocks):
            block_name = f"{name}_block{block}"
            conv = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=block_name)
            x = layers.Add(name=f"{block_name}_add")([x, _conv_bn_relu(x, conv, block_name)])
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    return keras.Model(inputs, _head(x, spec), name="sepnet")


BACKBONE = "backbone"  # the layer name of the pretrained network inside a transfer model
APPLICATIONS = {
    "mobilenetv3small": lambda **kw: keras.applications.MobileNetV3Small(include_preprocessing=True, **kw),
    "mobilenetv3large": lambda **kw: keras.applications.MobileNetV3Large(include_preprocessing=True, **kw),
    "efficientnetb0": lambda **kw: keras.applications.EfficientNetB0(**kw),
}


def build_transfer(arch: str, spec: PreprocessingSpec, weights: str) -> keras.Model:
    """A pretrained backbone without its ImageNet head, pooled, with a new classifier.

    Pretrained (weights "imagenet" or a file): the backbone starts frozen and always runs in
    inference mode (training=False), so its BatchNormalization statistics, learned on millions
    of images, are never overwritten by a few hundred field photos, not even when fine-tuning
    unfreezes its top layers (`unfreeze_top`). From scratch (weights "none"): it all trains.
    """
    from .weights import imagenet_weights

    pretrained = weights != "none"
    path = str(imagenet_weights(arch)) if weights == "imagenet" else (weights if pretrained else None)
    try:
        backbone = APPLICATIONS[arch](input_shape=(spec.height, spec.width, 3), include_top=False, weights=path)
    except (ValueError, OSError) as exc:
        raise ParameterError("weights", f"{weights}: cannot be loaded into {arch} ({first_line(exc, 160)})") from None
    backbone.name = BACKBONE
    backbone.trainable = not pretrained
    if not pretrained:
        # From scratch, its BatchNormalization statistics must be learned too, and with these
        # backbones' momentum (0.999) they need thousands of steps to settle: a few hundred field
        # photos give a few hundred steps, and validation then sees garbage (measured: 0.5 on two
        # classes after 20 epochs). A momentum of 0.9 settles in tens of steps.
        for layer in backbone.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = 0.9
    inputs = keras.Input(shape=(spec.height, spec.width, 3), name="image")
    x = backbone(inputs, training=False) if pretrained else backbone(inputs)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    return keras.Model(inputs, _head(x, spec), name=f"{arch}_transfer")


for _name in APPLICATIONS:
    register(_name)(lambda spec, weights="imagenet", _arch=_name: build_transfer(_arch, spec, weights))


def unfreeze_top(model: keras.Model, layers_to_train: int) -> int:
    """Make the backbone's last `layers_to_train` layers trainable, BatchNormalization excepted
    (it stays frozen, in inference mode). Returns how many layers now train."""
    backbone = model.get_layer(BACKBONE)
    backbone.trainable = True
    trainable = 0
    for i, layer in enumerate(backbone.layers):
        train = i >= len(backbone.layers) - layers_to_train and not isinstance(layer, layers.BatchNormalization)
        layer.trainable = train
        trainable += int(train and bool(layer.weights))
    return trainable


def build_model(arch: str, spec: PreprocessingSpec, weights: str = "none") -> keras.Model:
    try:
        builder = ARCHITECTURES[arch]
    except KeyError:
        raise ParameterError("arch", f"{arch!r} is unknown; choose one of {', '.join(sorted(ARCHITECTURES))}") from None
    return builder(spec, weights)


# hh.trainer.config validates --arch without importing Keras; the two lists must agree.
if set(ARCHITECTURES) != set(ARCH_NAMES):
    raise RuntimeError(f"builders {sorted(ARCHITECTURES)} do not match hh.trainer.config.ARCH_NAMES {ARCH_NAMES}")


OPTIMIZERS = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}


def loss_function(spec: PreprocessingSpec, label_smoothing: float = 0.0, reduction: str = "sum_over_batch_size"):
    """Binary cross-entropy for one sigmoid unit, categorical for a softmax."""
    loss = keras.losses.BinaryCrossentropy if spec.class_mode == "binary" else keras.losses.CategoricalCrossentropy
    return loss(label_smoothing=label_smoothing, reduction=reduction)


def compile_model(
    model: keras.Model,
    spec: PreprocessingSpec,
    learning_rate: float,
    optimizer: str = "adam",
    label_smoothing: float = 0.0,
) -> keras.Model:
    model.compile(
        optimizer=OPTIMIZERS[optimizer](learning_rate=learning_rate),
        loss=loss_function(spec, label_smoothing),
        metrics=["accuracy"],
    )
    return model


def load_model_file(path: Path, damaged: str, compile: bool = False) -> keras.Model:  # noqa: A002 - Keras' word
    """A .keras file hh wrote (safe mode: no code runs from it). A file Keras cannot read is a
    UserError, `damaged` saying what that means; a full disk while Keras unpacks it is OutOfSpace."""
    import zipfile

    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: {damaged} (a .keras file is a zip archive; this is not)")
    try:
        return keras.models.load_model(path, safe_mode=True, compile=compile)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a damaged file; all mean the same
        if caused_by_full_disk(exc):  # Keras unpacks the weights to a temporary file first
            raise OutOfSpace(f"no space left to load {path} (Keras unpacks it to a temporary file)") from None
        raise UserError(f"{path}: {damaged} ({first_line(exc)})") from None


PREDICT_CHUNK = 32  # images per forward pass when scoring


def keras_probabilities(model: keras.Model, images, spec: PreprocessingSpec):
    """One probability per class for model-sized RGB images [N, H, W, 3] (0-255), as the exported
    .tflite gives them: [1-p, p] for a one-unit sigmoid."""
    import numpy as np

    # A chunk at a time: all of a validation set as float32 at once (and Keras' own copy of it)
    # took gigabytes at field scale.
    chunks = [
        model.predict_on_batch(np.asarray(images[start : start + PREDICT_CHUNK], np.float32))
        for start in range(0, len(images), PREDICT_CHUNK)
    ]
    probs = np.concatenate(chunks) if chunks else np.zeros((0, model.output_shape[-1]), np.float32)
    if probs.shape[-1] == 1 and spec.num_classes == 2:
        probs = np.concatenate([1.0 - probs, probs], axis=-1)
    return probs
