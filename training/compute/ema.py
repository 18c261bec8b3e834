"""Weight EMA (--ema_decay): an exponential moving average of the trainable weights, with batch-norm statistics
of its own, saved in every checkpoint; evaluated beside the raw weights, and what eval.py, predict.py, export.py
and the best checkpoints use when a run has one.

The decay warms up as timm's ModelEmaV3 does, 1 - (1 + t)^(-2/3) capped at --ema_decay, so the average follows
the fast early weights instead of staying near the initialization (0.9 at step 30, 0.99 at step 1000, 0.999 at
step 31,600)."""
import contextlib

import tensorflow as tf

from model.resnet_v2 import BatchNormalization

WARMUP_POWER = 2 / 3
SCOPE = "ema"  # its name in checkpoints: ema/shadow/<variable path with ':' for '/'>


def decay_at(step, decay):
    """The decay used by the update after `step` steps (0 at the first: the average starts as the weights)."""
    t = tf.maximum(tf.cast(step, tf.float32) - 1.0, 0.0)
    return tf.where(t > 0, tf.minimum(decay, 1.0 - tf.pow(1.0 + t, -WARMUP_POWER)), 0.0)


def key(variable):
    return variable.path.replace("/", ":")


class WeightEma(tf.Module):
    """Shadow copies of the trainable weights and of the trainable batch norms' statistics; build under the
    strategy's scope, so that they are mirrored like the weights."""

    def __init__(self, net, decay):
        super().__init__(name=SCOPE)
        self.decay = decay
        # The model's own variables, held where the checkpoint does not follow them (it saves them as the model's).
        self._of = _Variables(list(net.trainable_variables),
                              [v for layer in net.layers if isinstance(layer, BatchNormalization) and layer.trainable
                               for v in (layer.moving_mean, layer.moving_variance)])
        self.shadow = {key(v): tf.Variable(v, trainable=False, name=key(v).replace(":", "_"))
                       for v in self._of.tracked + self._of.statistics}

    def update(self, step):
        """After the optimizer's update of `step` (cross-replica context: every replica's copy moves alike). The
        statistics are averaged too, for runs without precise batch norm (which replaces them before use)."""
        d = decay_at(step, self.decay)
        for v in self._of.tracked + self._of.statistics:
            shadow = self.shadow[key(v)]
            shadow.assign(d * shadow + (1.0 - d) * tf.cast(v, shadow.dtype))

    def keep_statistics(self):
        """The model's current batch-norm statistics become the average's own (after recomputing them with the
        averaged weights swapped in)."""
        for v in self._of.statistics:
            self.shadow[key(v)].assign(v)

    @contextlib.contextmanager
    def swapped_in(self):
        """The model holds the averaged weights and their statistics inside the block, its own ones after it."""
        own = [tf.identity(v) for v in self._of.tracked + self._of.statistics]
        try:
            for v in self._of.tracked + self._of.statistics:
                v.assign(self.shadow[key(v)])
            yield
        finally:
            for v, value in zip(self._of.tracked + self._of.statistics, own):
                v.assign(value)


class _Variables:
    """Not trackable, so not a second path to the model's variables in checkpoints."""

    def __init__(self, tracked, statistics):
        self.tracked, self.statistics = tracked, statistics


def install_from_checkpoint(net, path):
    """Loads the averaged weights and statistics a checkpoint holds into `net` (already restored from it);
    returns how many variables it replaced (0: the run had no EMA)."""
    reader = tf.train.load_checkpoint(path)
    saved = reader.get_variable_to_shape_map()
    replaced = 0
    for v in net.weights:
        name = f"{SCOPE}/shadow/{key(v)}/.ATTRIBUTES/VARIABLE_VALUE"
        if name in saved:
            v.assign(reader.get_tensor(name))
            replaced += 1
    return replaced
