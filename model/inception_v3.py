"""Inception V3 (Szegedy et al., "Rethinking the Inception Architecture", 2016), layer for layer as Keras'
InceptionV3 without the auxiliary head: 23,851,784 parameters with 1000 classes at 299 px.

The stem's five convolutions and two max-pools take 299 px to 35x35x192; three Inception-A modules (a 5x5
branch beside a 5x5 factorized as two 3x3) keep 35x35; a grid reduction goes to 17x17x768; four Inception-B
modules factorize 7x7 into 1x7 and 7x1 convolutions; a second reduction goes to 8x8x1280; two Inception-C modules
with expanded 1x3 / 3x1 branches end at 8x8x2048 ("mixed10"), then global average pooling and the logits.
Every convolution is conv (no bias) - batch norm without scale - ReLU, as in Keras and slim: ReLU commutes with a
positive per-channel scale, so the next convolution's weights can absorb it.
The VALID stem and reductions need at least 75 px (Keras' minimum); there is no small-image variant.
"""
import keras
from keras import layers

from model.resnet_v2 import batch_norm_factory

MIN_IMAGE_SIZE = 75
# The eleven modules in order: (kind, the width that varies between modules of that kind).
MODULES = (("a", 32), ("a", 64), ("a", 64), ("reduction_a", None),
           ("b", 128), ("b", 160), ("b", 160), ("b", 192), ("reduction_b", None), ("c", None), ("c", None))


def _conv(x, filters, kernel, name, norm, stride=1, padding="same"):
    """conv (no bias: the batch norm's offset is one) - BN - ReLU; kernel is (height, width) or an int."""
    x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False,
                      kernel_initializer="he_normal", name=name)(x)
    return layers.ReLU(name=name + "_relu")(norm(name + "_bn")(x))


def _avg_pool_branch(x, filters, name, norm):
    x = layers.AveragePooling2D(3, 1, padding="same", name=name + "_pool")(x)
    return _conv(x, filters, 1, name + "_pool_conv", norm)


def module_a(x, pool_filters, name, norm):
    """35x35: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg-pool-1x1."""
    b1 = _conv(x, 64, 1, name + "_1x1", norm)
    b2 = _conv(x, 48, 1, name + "_5x5_reduce", norm)
    b2 = _conv(b2, 64, 5, name + "_5x5", norm)
    b3 = _conv(x, 64, 1, name + "_3x3dbl_reduce", norm)
    b3 = _conv(b3, 96, 3, name + "_3x3dbl_1", norm)
    b3 = _conv(b3, 96, 3, name + "_3x3dbl_2", norm)
    return layers.Concatenate(name=name)([b1, b2, b3, _avg_pool_branch(x, pool_filters, name, norm)])


def reduction_a(x, _, name, norm):
    """35 -> 17: strided 3x3 | 1x1-3x3-strided 3x3 | max-pool, concatenated (the paper's efficient grid
    reduction: convolve and pool in parallel rather than pool first and lose information)."""
    b1 = _conv(x, 384, 3, name + "_3x3", norm, stride=2, padding="valid")
    b2 = _conv(x, 64, 1, name + "_3x3dbl_reduce", norm)
    b2 = _conv(b2, 96, 3, name + "_3x3dbl_1", norm)
    b2 = _conv(b2, 96, 3, name + "_3x3dbl_2", norm, stride=2, padding="valid")
    b3 = layers.MaxPooling2D(3, 2, name=name + "_pool")(x)
    return layers.Concatenate(name=name)([b1, b2, b3])


def module_b(x, width, name, norm):
    """17x17: 7x7 factorized as 1x7 then 7x1 (two layers, 2x7 instead of 49 weights per channel pair)."""
    b1 = _conv(x, 192, 1, name + "_1x1", norm)
    b2 = _conv(x, width, 1, name + "_7x7_reduce", norm)
    b2 = _conv(b2, width, (1, 7), name + "_7x7_1", norm)
    b2 = _conv(b2, 192, (7, 1), name + "_7x7_2", norm)
    b3 = _conv(x, width, 1, name + "_7x7dbl_reduce", norm)
    for i, (kernel, filters) in enumerate((((7, 1), width), ((1, 7), width), ((7, 1), width), ((1, 7), 192)), 1):
        b3 = _conv(b3, filters, kernel, f"{name}_7x7dbl_{i}", norm)
    return layers.Concatenate(name=name)([b1, b2, b3, _avg_pool_branch(x, 192, name, norm)])


def reduction_b(x, _, name, norm):
    """17 -> 8: 1x1-strided 3x3 | 1x1-1x7-7x1-strided 3x3 | max-pool."""
    b1 = _conv(x, 192, 1, name + "_3x3_reduce", norm)
    b1 = _conv(b1, 320, 3, name + "_3x3", norm, stride=2, padding="valid")
    b2 = _conv(x, 192, 1, name + "_7x7x3_reduce", norm)
    b2 = _conv(b2, 192, (1, 7), name + "_7x7x3_1", norm)
    b2 = _conv(b2, 192, (7, 1), name + "_7x7x3_2", norm)
    b2 = _conv(b2, 192, 3, name + "_7x7x3_3", norm, stride=2, padding="valid")
    b3 = layers.MaxPooling2D(3, 2, name=name + "_pool")(x)
    return layers.Concatenate(name=name)([b1, b2, b3])


def _expanded(x, name, norm):
    """1x3 and 3x1 side by side rather than in sequence: the paper's wider filter bank for the 8x8 grid."""
    return layers.Concatenate(name=name + "_concat")([_conv(x, 384, (1, 3), name + "_1x3", norm),
                                                      _conv(x, 384, (3, 1), name + "_3x1", norm)])


def module_c(x, _, name, norm):
    """8x8: 1x1 | 1x1-(1x3, 3x1) | 1x1-3x3-(1x3, 3x1) | avg-pool-1x1."""
    b1 = _conv(x, 320, 1, name + "_1x1", norm)
    b2 = _expanded(_conv(x, 384, 1, name + "_3x3_reduce", norm), name + "_3x3", norm)
    b3 = _conv(x, 448, 1, name + "_3x3dbl_reduce", norm)
    b3 = _expanded(_conv(b3, 384, 3, name + "_3x3dbl_1", norm), name + "_3x3dbl", norm)
    return layers.Concatenate(name=name)([b1, b2, b3, _avg_pool_branch(x, 192, name, norm)])


KINDS = {"a": module_a, "reduction_a": reduction_a, "b": module_b, "reduction_b": reduction_b, "c": module_c}


def stem(x, norm):
    """299 -> 149 -> 147 -> 147 -> pool 73 -> 73 -> 71 -> pool 35, VALID except the third convolution."""
    x = _conv(x, 32, 3, "stem_conv1", norm, stride=2, padding="valid")
    x = _conv(x, 32, 3, "stem_conv2", norm, padding="valid")
    x = _conv(x, 64, 3, "stem_conv3", norm)
    x = layers.MaxPooling2D(3, 2, name="stem_pool1")(x)
    x = _conv(x, 80, 1, "stem_conv4", norm, padding="valid")
    x = _conv(x, 192, 3, "stem_conv5", norm, padding="valid")
    return layers.MaxPooling2D(3, 2, name="stem_pool2")(x)


def build(num_classes, image_size, include_top=True, sync_bn=False, bn_momentum=0.997, name="inception_v3"):
    """The Keras model: NHWC float images in; float32 logits out, or the mixed10 feature map without the top."""
    norm = batch_norm_factory(sync_bn, bn_momentum, scale=False)
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = stem(inputs, norm)
    for i, (kind, width) in enumerate(MODULES):
        x = KINDS[kind](x, width, f"mixed{i}", norm)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="pool")(x)
        # Logits stay float32 under mixed precision, so the softmax and loss are computed in full precision.
        x = layers.Dense(num_classes, kernel_initializer="he_normal", dtype="float32", name="logits")(x)
    return keras.Model(inputs, x, name=name)
