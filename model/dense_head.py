"""The classifier AlexNet and VGG share: flatten, two ReLU dense layers with dropout 0.5, float32 logits."""
import keras
import tensorflow as tf
from keras import layers

DROPOUT_RATE = 0.5  # both papers, on the two hidden dense layers


@keras.saving.register_keras_serializable(package="model")
class Dropout(layers.Dropout):
    """Keras dropout with a different mask on every replica.

    Keras 3 draws the mask from a SeedGenerator whose state variable has aggregation 'none'; under MirroredStrategy
    every replica holds a copy with the same initial value and advances it the same way, so all replicas drop the
    same units of their i-th example at every step. Folding the replica id into the seed decorrelates them; on one
    replica (id 0) the masks are Keras' own stream, folded once.
    """

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        """Checkpoints also hold the seed state (Keras leaves it out of them and out of `weights`), so a resumed run
        draws the masks an uninterrupted one would have drawn, not the first steps' masks again."""
        children = super()._trackable_children(save_type, **kwargs)
        if save_type == "checkpoint":
            children["seed_generator_state"] = self.seed_generator.state
        return children

    def call(self, inputs, training=False):
        if not training or not self.rate:
            return inputs
        seed = tf.cast(self.seed_generator.next(), tf.int64)
        context = tf.distribute.get_replica_context()
        replica = context.replica_id_in_sync_group if context is not None else 0
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(replica, tf.int64))
        return tf.nn.experimental.stateless_dropout(inputs, self.rate, seed=seed)


def dense_head(x, num_classes, width):
    """fc6 -> dropout -> fc7 -> dropout -> logits, the order of the AlexNet and VGG papers (dropout on the outputs
    of the two hidden layers). He initialization, like the convolutions: a plain 16-layer net trains from scratch
    with it (He et al. 2015), where the papers' fixed-stddev Gaussians needed VGG's shallower-net warm start."""
    x = layers.Flatten(name="flatten")(x)
    for name in ("fc6", "fc7"):
        x = layers.Dense(width, activation="relu", kernel_initializer="he_normal", name=name)(x)
        x = Dropout(DROPOUT_RATE, name=name.replace("fc", "dropout"))(x)
    # Logits stay float32 under mixed precision, so the softmax and loss are computed in full precision.
    return layers.Dense(num_classes, kernel_initializer="he_normal", dtype="float32", name="logits")(x)
