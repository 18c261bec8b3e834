"""Winograd's F(2x2, 3x3) (model/winograd.py): the convolution it replaces and its gradients, where it applies,
and a network computing with it."""
import numpy as np
import pytest
import tensorflow as tf

import model
from model import resnet_v2, winograd


@pytest.mark.parametrize("shape", [(2, 14, 14, 8, 5), (1, 7, 7, 4, 4), (3, 5, 3, 2, 6), (2, 2, 9, 3, 3),
                                   (2, 1, 1, 3, 2)])
def test_it_computes_the_same_convolution_as_tensorflows(shape):
    batch, height, width, channels, filters = shape
    x = tf.random.stateless_normal((batch, height, width, channels), seed=(1, height))
    kernel = tf.random.stateless_normal((3, 3, channels, filters), seed=(2, width))
    expected = tf.nn.conv2d(x, kernel, 1, "SAME")
    got = winograd.conv2d(x, winograd.transform_kernel(kernel))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * float(tf.reduce_max(tf.abs(expected))))
    # In a graph with the batch unknown, as a frozen network's function is traced.
    graph = tf.function(lambda x: winograd.conv2d(x, winograd.transform_kernel(kernel)),
                        input_signature=[tf.TensorSpec((None, height, width, channels))])
    np.testing.assert_array_equal(graph(x), got)


def _conv(**kwargs):
    return resnet_v2.Conv2D(**{"filters": 4, "kernel_size": 3, "padding": "same", **kwargs})


@pytest.mark.parametrize("layer, shape, applies", [
    (_conv(), (8, 14, 14, 256), True),
    (_conv(), (8, 2, 2, 512), True),
    (_conv(), (8, 14, 14, 128), False),  # slower below 256 channels
    (_conv(), (8, 1, 1, 512), False),  # one 4x4 tile per output
    (_conv(), (8, 1, 7, 512), False),
    (_conv(strides=2), (8, 14, 14, 256), False),
    (_conv(padding="valid"), (8, 14, 14, 256), False),
    (_conv(dilation_rate=2), (8, 14, 14, 256), False),
    (_conv(kernel_size=1), (8, 14, 14, 256), False),
    (_conv(), (8, None, None, 256), False),  # a fully convolutional input of any size
])
def test_it_applies_to_the_shapes_it_was_faster_on(layer, shape, applies):
    assert winograd.applies(layer, tf.keras.KerasTensor(shape)) == applies


def _wide_block(kernel):
    """conv 3x3 (256 -> 256) -> BN -> ReLU -> conv 3x3 with bias, on 6x6 inputs: two convolutions it applies to."""
    tf.keras.utils.set_random_seed(0)
    with model.spatial_kernel(kernel):
        inputs = tf.keras.Input((6, 6, 256))
        x = resnet_v2.Conv2D(256, 3, padding="same", use_bias=False, name="a")(inputs)
        x = tf.keras.layers.ReLU()(resnet_v2.BatchNormalization(name="bn")(x))
        x = resnet_v2.Conv2D(8, 3, padding="same", use_bias=True, bias_initializer="ones", name="b")(x)
    return tf.keras.Model(inputs, x)


def test_its_gradients_are_the_convolutions():
    x = tf.random.stateless_normal((2, 6, 5, 8), seed=(7, 8))
    kernel = tf.random.stateless_normal((3, 3, 8, 4), seed=(9, 10))
    weights = tf.range(4, dtype=tf.float32)  # a loss whose gradient differs per output channel
    grads = {}
    for name, conv in [("direct", lambda x, k: tf.nn.conv2d(x, k, 1, "SAME")),
                       ("winograd", winograd.conv2d_for_training)]:
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            loss = tf.reduce_sum(tf.square(conv(x, kernel)) * weights)
        grads[name] = tape.gradient(loss, [x, kernel])
    for got, expected in zip(grads["winograd"], grads["direct"]):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * float(tf.reduce_max(tf.abs(expected))))


def test_a_network_computes_with_it_where_it_applies():
    nets = {kernel: _wide_block(kernel) for kernel in ("conv", "winograd")}
    assert resnet_v2.Conv2D.spatial_kernel == "conv"  # the context restores the default
    x = tf.random.stateless_normal((3, 6, 6, 256), seed=(3, 4))
    for training in (False, True):
        step = {kernel: tf.function(lambda x, n=net: n(x, training=training)) for kernel, net in nets.items()}
        expected = step["conv"](x)
        np.testing.assert_allclose(step["winograd"](x), expected, rtol=0,
                                   atol=1e-5 * float(tf.reduce_max(tf.abs(expected))))
        ops = {kernel: [op.type for op in f.get_concrete_function(x).graph.get_operations()]
               for kernel, f in step.items()}
        assert ops["winograd"].count("BatchMatMulV2") == 2 and "Conv2D" not in ops["winograd"]
        assert ops["conv"].count("Conv2D") == 2 and "BatchMatMulV2" not in ops["conv"]
    with pytest.raises(ValueError, match="conv or winograd"):
        with model.spatial_kernel("fft"):
            pass
