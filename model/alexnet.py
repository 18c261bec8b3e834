"""AlexNet as the book chapter's benchmark builds it (one tower, 64-192-384-256-256 filters), with its classifier.

ImageNet layout (images > 64 px): conv1 11x11 stride 4, conv2 5x5, conv3-5 3x3, all SAME with bias and ReLU;
local response normalization after conv1 and conv2 in `alexnet_lrn` (not in `alexnet`); 3x3 stride-2 VALID
max-pools after conv1, conv2 and conv5 (224 px: 56 -> 27 -> 13 -> 6). The convolutional part up to pool5 has
2,469,696 parameters; fc6 4096, fc7 4096 and the logits make 61,100,840 with 1000 classes.

Small-image variant (<= 64 px): 11x11 stride 4 and three VALID pools would leave nothing of a 32-px image, so conv1
is 5x5 stride 1 (the first layer of TensorFlow's classic CIFAR-10 tutorial model) and fc6/fc7 have 512
units (a 3x3x256 pool5 feeds them at 32 px; 4096 would be 90% of the parameters for 10 classes). Everything else
is unchanged: 32 -> 15 -> 7 -> 3.
"""
import keras
import tensorflow as tf
from keras import layers

from model.dense_head import dense_head

# (name, filters, kernel, stride): the chapter's five convolutions; `_max_pool` follows the ones in POOLED_AFTER.
CONVS = (("conv1", 64, 11, 4), ("conv2", 192, 5, 1), ("conv3", 384, 3, 1), ("conv4", 256, 3, 1),
         ("conv5", 256, 3, 1))
SMALL_CONV1 = ("conv1", 64, 5, 1)
POOLED_AFTER = {"conv1": "pool1", "conv2": "pool2", "conv5": "pool5"}
LRN_AFTER = {"conv1": "lrn1", "conv2": "lrn2"}
DENSE_WIDTH = 4096
SMALL_DENSE_WIDTH = 512
# The chapter's tf.nn.lrn(conv1, 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75).
LRN = {"depth_radius": 4, "bias": 1.0, "alpha": 0.001 / 9.0, "beta": 0.75}


@keras.saving.register_keras_serializable(package="model")
class LocalResponseNormalization(layers.Layer):
    """tf.nn.local_response_normalization across channels; Keras 3 has no such layer. Computed in float32 (the
    sum of squares over 9 channels overflows float16 for activations above ~85)."""

    def __init__(self, depth_radius, bias, alpha, beta, **kwargs):
        super().__init__(**kwargs)
        self.lrn = {"depth_radius": depth_radius, "bias": bias, "alpha": alpha, "beta": beta}

    def call(self, inputs):
        outputs = tf.nn.local_response_normalization(tf.cast(inputs, tf.float32), **self.lrn)
        return tf.cast(outputs, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), **self.lrn}


def build(num_classes, image_size, lrn, small, include_top=True, name="alexnet"):
    """The Keras model: NHWC float images in; float32 logits out, or pool5 without the top (the chapter's
    benchmark)."""
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = inputs
    for conv_name, filters, kernel, stride in ((SMALL_CONV1,) + CONVS[1:]) if small else CONVS:
        # He initialization (the chapter's stddev-0.1 Gaussian is for timing only: it does not train).
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", activation="relu",
                          kernel_initializer="he_normal", name=conv_name)(x)
        if lrn and conv_name in LRN_AFTER:
            x = LocalResponseNormalization(**LRN, name=LRN_AFTER[conv_name])(x)
        if conv_name in POOLED_AFTER:
            x = layers.MaxPooling2D(3, 2, padding="valid", name=POOLED_AFTER[conv_name])(x)
    if include_top:
        x = dense_head(x, num_classes, SMALL_DENSE_WIDTH if small else DENSE_WIDTH)
    return keras.Model(inputs, x, name=name)
