"""Precise batch norm: before each evaluation and checkpoint, the batch-norm statistics are recomputed from a fixed
set of training batches with the weights as they are (fvcore's update_bn_stats, Detectron2's PreciseBN; Wu &
Johnson, "Rethinking 'Batch' in BatchNorm", 2021). The moving averages lag the weights: at decay 0.997 they
still hold 0.997^300 = 40 % of their initial values after 300 steps, and a 300-step run evaluated with them
reads far too low.

The recomputed values replace the moving statistics in the model, as fvcore does, so that every checkpoint, best
checkpoint, eval.py, predict.py and export.py use them, and training continues its moving averages from there.
They are a function of the weights alone (always the same batches, from a stream of their own), so a resumed run
recomputes exactly what the uninterrupted one did. Frozen batch-norm layers (--freeze_backbone) keep theirs."""
import math
import time

import keras
import tensorflow as tf

import data
from model.resnet_v2 import BatchNormalization

SEED_OFFSET = 7919  # the statistics' batches come from a stream seeded apart from the training order


class PreciseBatchNorm:
    """recompute() sets the statistics of every trainable batch-norm layer of `net` to the mean and variance of
    its inputs over `examples` training images (augmented as in training), in training mode; returns a line
    saying what it did, or None when the model has no such layer."""

    def __init__(self, strategy, net, info, *, batch_size, examples, seed, data_dir=None):
        self.layers = [layer for layer in net.layers if isinstance(layer, BatchNormalization) and layer.trainable]
        if not self.layers or examples <= 0 or any(layer.synchronized for layer in self.layers):
            self.layers = []  # nothing to recompute (or --sync_bn, whose Keras path can't hold its averages still)
            return
        steps = max(1, min(math.ceil(examples / batch_size), info.num_train // batch_size))
        self.examples = steps * batch_size
        # A pipeline yields per-replica batches, one for each of its replicas per global step.
        self.dataset = strategy.distribute_datasets_from_function(
            lambda ctx: data.make_train_dataset(info, data_dir=data_dir, global_batch_size=batch_size,
                                                seed=seed + SEED_OFFSET, input_context=ctx, deterministic=True)
            .take(steps * ctx.num_replicas_in_sync // ctx.num_input_pipelines))
        # The network up to every trainable batch norm's input; frozen ones normalize with their own statistics.
        probe = keras.Model(net.inputs, [layer.input for layer in self.layers])

        sizes = [int(layer.moving_mean.shape[0]) for layer in self.layers]

        def replica_moments(images):
            inputs = probe(images, training=True)
            inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
            inputs = [tf.cast(x, tf.float32) for x in inputs]
            # One vector (every layer's means, then its mean squares): one all-reduce per batch, and collectives
            # across workers take no nested structure of differently shaped tensors.
            return tf.concat([tf.reduce_mean(x, [0, 1, 2]) for x in inputs] +
                             [tf.reduce_mean(tf.square(x), [0, 1, 2]) for x in inputs], axis=0)

        @tf.function
        def moments(dataset):
            total = tf.zeros([2 * sum(sizes)])
            for batch in dataset:
                per_replica = strategy.run(replica_moments, args=(batch[0],))
                # Every replica holds the same number of images: the mean of their means is the global mean.
                total += strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)
            means, squares = tf.split(total / steps, 2)
            return tuple(zip(tf.split(means, sizes), tf.split(squares, sizes)))

        self._moments = moments

    def recompute(self):
        if not self.layers:
            return None
        start = time.perf_counter()
        for layer in self.layers:
            layer.update_moving_statistics = False  # read while the probe is traced (the first call)
        try:
            moments = self._moments(self.dataset)
        finally:
            for layer in self.layers:
                layer.update_moving_statistics = True
        for layer, (mean, mean_square) in zip(self.layers, moments):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(tf.maximum(mean_square - tf.square(mean), 0.0))
        return (f"precise batch norm: {len(self.layers)} layers from {self.examples} training images in "
                f"{time.perf_counter() - start:.1f} s")
