"""VGGNet-16 (Simonyan & Zisserman 2015, configuration D): 13 3x3 convolutions in five groups, three dense layers.

ImageNet layout (images > 64 px): groups of 2-2-3-3-3 SAME 3x3 convolutions with 64-128-256-512-512 filters, bias
and ReLU, each group ending in a 2x2 stride-2 max-pool (224 px: 7x7x512 at pool5); fc6 4096, fc7 4096 with dropout
and the logits: 138,357,544 parameters with 1000 classes, as published (and as Keras' VGG16). No batch norm.

Small-image variant (<= 64 px): the well-known CIFAR VGG-16 (Liu & Deng 2015; Zagoruyko's cifar.torch): the same
13 convolutions and five pools (32 px: 1x1x512 at pool5) with fc6 and fc7 of 512 units, since 4096-wide layers on
a 512-vector would hold 19 M of its 34 M parameters to tell 10 classes apart. Unlike theirs it has no batch norm,
so it needs the papers' small learning rate (see model/zoo.py's recipe).
"""
import keras
from keras import layers

from model.dense_head import dense_head

# (convolutions, filters) per group, configuration D of the paper.
GROUPS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
DENSE_WIDTH = 4096
SMALL_DENSE_WIDTH = 512


def build(num_classes, image_size, small, include_top=True, name="vgg16"):
    """The Keras model: NHWC float images in; float32 logits out, or block5_pool without the top."""
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = inputs
    for group, (convs, filters) in enumerate(GROUPS, start=1):
        for i in range(1, convs + 1):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer="he_normal",
                              name=f"block{group}_conv{i}")(x)
        x = layers.MaxPooling2D(2, 2, name=f"block{group}_pool")(x)
    if include_top:
        x = dense_head(x, num_classes, SMALL_DENSE_WIDTH if small else DENSE_WIDTH)
    return keras.Model(inputs, x, name=name)
