"""Scale-out on TensorFlow's own engine: tf.distribute strategies for hh-train.

- mirrored: MirroredStrategy, the GPUs of one machine.
- multiworker: MultiWorkerMirroredStrategy across machines, configured the standard way by the
  TF_CONFIG environment variable on every worker (same cluster, its own task index).
- auto: mirrored when more than one GPU is visible, otherwise no strategy.

--batch-size is the global batch: each step processes that many images in total, split
evenly over all replicas (GPUs, or workers on CPUs). The learning rate is used as given, not
scaled with the replica count: a bigger global batch usually wants a larger --lr.

Each worker trains on its own shard of the image files (file i goes to worker i mod workers).
Every worker's pre-training scan decodes all files once anyway, to check them, and keeps them
(in RAM within the budget, else in an inputs file on disk); its shard reads its own rows from
there, so nothing is decoded twice. Only the chief
writes the run's artifacts; every worker keeps its own resumable checkpoint, as Keras'
BackupAndRestore does, so --resume works on all of them.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from ..edge.errors import ParameterError, UserError
from ..edge.folders import ImageFolder
from ..edge.spec import PreprocessingSpec
from .config import STRATEGIES
from .data import make_dataset
from .models import loss_function

TF_CONFIG_EXAMPLE = (
    'TF_CONFIG must be JSON like {"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
)


@dataclass(frozen=True)
class Cluster:
    strategy: tf.distribute.Strategy | None
    is_chief: bool
    worker_index: int
    description: str

    def scope(self):
        return self.strategy.scope() if self.strategy else contextlib.nullcontext()

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync if self.strategy else 1


def read_tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise UserError("{param:strategy} multiworker needs TF_CONFIG on every worker (see README: Scale-out training)")
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        valid = (
            isinstance(workers, list)
            and workers
            and task["type"] in ("worker", "chief")
            and isinstance(task["index"], int)
            and not isinstance(task["index"], bool)
            and task["index"] >= 0
            # The task must be one of the listed ones: index 2 of two workers is no worker at all.
            and task["index"] < len(config["cluster"].get(task["type"]) or [])
        )
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        valid = False
    if not valid:
        raise UserError(TF_CONFIG_EXAMPLE)
    return config


def resolve_cluster(name: str) -> Cluster:
    """The strategy for --strategy. Must run before any other TensorFlow op in the process:
    collective communication is configured when the strategy is created."""
    if name not in STRATEGIES:
        raise ParameterError("strategy", f"must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if name == "multiworker":
        config = read_tf_config()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        task_type, index = config["task"]["type"], config["task"]["index"]
        cluster = config["cluster"]
        # The chief is the "chief" task if the cluster has one, else worker 0.
        is_chief = task_type == "chief" or ("chief" not in cluster and index == 0)
        n_workers = len(cluster["worker"]) + len(cluster.get("chief", []))
        worker_index = index + (len(cluster.get("chief", [])) if task_type == "worker" else 0)
        return Cluster(strategy, is_chief, worker_index, f"multi-worker: task {task_type} {index} of {n_workers}")
    gpus = tf.config.list_physical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        strategy = tf.distribute.MirroredStrategy()
        return Cluster(strategy, True, 0, f"mirrored over {strategy.num_replicas_in_sync} device(s)")
    return Cluster(None, True, 0, "single device")


def fit_multiworker(
    model,
    cluster: Cluster,
    spec: PreprocessingSpec,
    train_ds,
    val_ds,
    global_batch: int,
    epochs: int,
    initial_epoch: int,
    callback,
    class_weight: dict[int, float] | None = None,
    label_smoothing: float = 0.0,
) -> None:
    """A training loop on tf.distribute's public API, for MultiWorkerMirroredStrategy.

    Keras 3's model.fit does not run under MultiWorkerMirroredStrategy (keras-team/keras#20585:
    its first-batch build and its metric reduction both fail across workers), so multi-worker
    runs use this loop: same model, optimizer, loss and per-epoch callback as model.fit, with
    the loss averaged over the global batch and gradients all-reduced by the strategy.
    class_weight weighs each image's loss by its class, as model.fit's argument does.
    """
    strategy = cluster.strategy
    assert strategy is not None, "the multi-worker loop runs under a strategy"
    binary = spec.class_mode == "binary"
    with strategy.scope():
        loss_fn = loss_function(spec, label_smoothing, reduction="none")
        optimizer = model.optimizer
        optimizer.build(model.trainable_variables)

    def correct(y, pred):
        if binary:
            return tf.reduce_sum(tf.cast(tf.equal(tf.cast(pred > 0.5, tf.float32), y), tf.float32))
        return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(pred, -1), tf.argmax(y, -1)), tf.float32))

    weights = None
    if class_weight:
        weights = tf.constant([class_weight[i] for i in range(len(class_weight))], tf.float32)

    def sample_weights(y):
        if weights is None:
            return None
        index = tf.cast(tf.round(y[:, 0]), tf.int32) if binary else tf.argmax(y, -1, output_type=tf.int32)
        return tf.gather(weights, index)

    def train_step(x, y):
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            per_image = loss_fn(y, pred)
            if weights is not None:
                per_image = per_image * sample_weights(y)
            loss = tf.nn.compute_average_loss(per_image, global_batch_size=global_batch)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        n = tf.cast(tf.shape(x)[0], tf.float32)
        return tf.reduce_sum(loss_fn(y, pred)), correct(y, pred), n

    def eval_step(x, y):
        pred = model(x, training=False)
        return tf.reduce_sum(loss_fn(y, pred)), correct(y, pred), tf.cast(tf.shape(x)[0], tf.float32)

    @tf.function
    def distributed(step, x, y):
        results = strategy.run(step, args=(x, y))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, r, axis=None) for r in results]

    def run_epoch(step, dataset, batch_begins) -> tuple[float, float]:
        totals = np.zeros(3)
        for batch, (x, y) in enumerate(dataset):
            batch_begins(batch)  # where an interrupt ends training (hh.trainer.callbacks.StopAtInterrupt)
            totals += [float(v) for v in distributed(step, x, y)]
        return totals[0] / max(totals[2], 1), totals[1] / max(totals[2], 1)

    callback.set_model(model)
    model.stop_training = False
    for epoch in range(initial_epoch, epochs):
        callback.on_epoch_begin(epoch)
        loss, accuracy = run_epoch(train_step, train_ds, callback.on_train_batch_begin)
        val_loss, val_accuracy = run_epoch(eval_step, val_ds, callback.on_test_batch_begin)
        callback.on_epoch_end(epoch, {"loss": loss, "accuracy": accuracy, "val_loss": val_loss, "val_accuracy": val_accuracy})
        if model.stop_training:  # early stopping, as model.fit honours it
            break


def cluster_dataset(
    cluster: Cluster,
    folder: ImageFolder,
    spec: PreprocessingSpec,
    global_batch: int,
    shuffle: bool,
    seed: int,
    augment: str = "none",
    decoded=None,
):
    """The input for model.fit: plain on one device, one shard per worker under a strategy."""
    if cluster.strategy is None:
        return make_dataset(folder, spec, global_batch, shuffle, seed, augment, decoded)

    def per_worker(context: tf.distribute.InputContext) -> tf.data.Dataset:
        pipeline, pipelines = context.input_pipeline_id, context.num_input_pipelines
        shard = folder.subset(list(range(pipeline, len(folder), pipelines)))
        # Each worker augments its own shard with its own stream of seeds.
        ds = make_dataset(
            shard,
            spec,
            context.get_per_replica_batch_size(global_batch),
            shuffle,
            seed + 1000 * pipeline,
            augment,
            decoded,  # a shard takes its own rows of what the scan decoded
        )
        options = tf.data.Options()
        # Already sharded by file above: tf.distribute must not shard it again.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return ds.with_options(options)

    return cluster.strategy.distribute_datasets_from_function(per_worker)
