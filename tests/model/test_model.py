"""The ResNet V2 family: exact classic parameter counts, stage shapes, depth rules and batch-norm behaviour."""
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import model
from model import resnet_v2

# Counted by running the classic slim resnet_v2_* (Keras' ResNet50V2/101V2/152V2 agree), 1000 classes.
CLASSIC_COUNTS = {
    50: (25_613_800, 25_568_360),
    101: (44_675_560, 44_577_896),
    152: (60_380_648, 60_236_904),
    200: (64_894_440, 64_726_120),
}
# The classic CIFAR sizes (10 classes, moving statistics included), in millions of parameters.
CIFAR_SIZES = {20: 0.27, 56: 0.86, 110: 1.74, 164: 1.73, 1001: 10.5}


@pytest.mark.parametrize("depth", sorted(CLASSIC_COUNTS))
def test_imagenet_parameter_counts_equal_the_classic_networks(depth):
    net, _ = model.create(depth, num_classes=1000, image_size=224)
    assert model.parameter_counts(net) == CLASSIC_COUNTS[depth]


@pytest.mark.parametrize("depth", sorted(CIFAR_SIZES))
def test_cifar_sizes_within_three_percent(depth):
    net, spec = model.create(depth, num_classes=10, image_size=32)
    assert spec.family == "cifar"
    total, _ = model.parameter_counts(net)
    assert total / 1e6 == pytest.approx(CIFAR_SIZES[depth], rel=0.03)


def test_imagenet_stage_shapes_and_stride_on_the_last_unit():
    net, spec = model.create(50, num_classes=1000, image_size=224)
    rows = model.stage_outputs(net, spec)
    # Units run at 56, 28, 14, 7; the last unit of stages 1-3 halves the size (slim's Block layout).
    assert [r[2] for r in rows] == [(56, 56), (28, 28), (14, 14), (7, 7)]
    assert [r[3] for r in rows] == [(28, 28, 256), (14, 14, 512), (7, 7, 1024), (7, 7, 2048)]
    assert spec.unit_strides(0) == (1, 1, 2) and spec.unit_strides(3) == (1, 1, 1)
    assert net.get_layer("stage1_unit3_conv2_pad") is not None  # slim's conv2d_same: explicit symmetric pad
    assert net.get_layer("stem_pool") is not None


def test_cifar_stage_shapes():
    net, spec = model.create(20, num_classes=10, image_size=32)
    assert [r[3] for r in model.stage_outputs(net, spec)] == [(32, 32, 16), (16, 16, 32), (8, 8, 64)]


def test_shortcuts_follow_slim():
    net, _ = model.create(50, num_classes=10, image_size=224)
    names = {layer.name: layer for layer in net.layers}
    # Depth changes on the first unit of each stage: a 1x1 projection (with bias) of the pre-activated input.
    projection = names["stage2_unit1_shortcut"]
    assert projection.kernel.shape == (1, 1, 256, 512) and projection.use_bias
    assert projection.input is names["stage2_unit1_preact_relu"].output
    # Same depth and stride 2: the raw input subsampled by a 1x1 max-pool.
    assert isinstance(names["stage1_unit3_shortcut"], tf.keras.layers.MaxPooling2D)
    assert "stage1_unit2_shortcut" not in names
    # The stem has a bias and no batch norm; the last conv of a unit has a bias, the others don't.
    assert names["stem_conv"].use_bias and names["stage1_unit1_conv3"].use_bias
    assert not names["stage1_unit1_conv1"].use_bias and not names["stage1_unit1_conv2"].use_bias


def test_small_images_get_the_small_stem():
    net, spec = model.create(50, num_classes=10, image_size=32)
    assert spec.family == "imagenet" and spec.small_stem
    assert net.get_layer("stem_conv").kernel.shape == (3, 3, 3, 64)
    assert "stem_pool" not in [layer.name for layer in net.layers]
    assert [r[3][:2] for r in model.stage_outputs(net, spec)] == [(16, 16), (8, 8), (4, 4), (4, 4)]


@pytest.mark.parametrize("depth,unit,arch,expected", [
    (18, "auto", "auto", ("imagenet", "basic", (2, 2, 2, 2))),
    (34, "auto", "auto", ("imagenet", "basic", (3, 4, 6, 3))),
    (200, "auto", "auto", ("imagenet", "bottleneck", (3, 24, 36, 3))),
    (20, "auto", "auto", ("cifar", "basic", (3, 3, 3))),
    (32, "auto", "auto", ("cifar", "basic", (5, 5, 5))),
    (44, "auto", "auto", ("cifar", "basic", (7, 7, 7))),
    (56, "auto", "auto", ("cifar", "basic", (9, 9, 9))),
    (110, "auto", "auto", ("cifar", "basic", (18, 18, 18))),
    (164, "auto", "auto", ("cifar", "bottleneck", (18, 18, 18))),
    (1001, "auto", "auto", ("cifar", "bottleneck", (111, 111, 111))),
    (50, "auto", "cifar", ("cifar", "basic", (8, 8, 8))),
    (56, "bottleneck", "auto", ("cifar", "bottleneck", (6, 6, 6))),
])
def test_depth_rules(depth, unit, arch, expected):
    spec = model.resolve(depth, unit, arch)
    assert (spec.family, spec.unit, spec.units) == expected


def test_filters_and_width():
    assert model.resolve(20).filters == (16, 32, 64)
    assert model.resolve(164).filters == (64, 128, 256)
    assert model.resolve(50).filters == (256, 512, 1024, 2048)
    assert model.resolve(20, width=2).filters == (32, 64, 128)


def test_deep_networks_build():
    for depth, size in ((1001, 32), (200, 224)):
        net, _ = model.create(depth, num_classes=10, image_size=size)
        assert net.output.shape[-1] == 10


@pytest.mark.parametrize("args,listed", [
    ((51,), "18, 34, 50, 101, 152, 200"),
    ((51, "basic", "cifar"), "8, 14, 20"),
    ((51, "auto", "imagenet"), "18, 34, 50, 101, 152, 200"),
    ((50, "basic", "imagenet"), "18, 34"),
    ((21, "bottleneck"), "11, 20, 29"),
])
def test_impossible_depths_list_the_valid_ones(args, listed):
    with pytest.raises(ValueError, match="valid depths") as error:
        model.resolve(*args)
    assert listed in str(error.value) and "\n" not in str(error.value)


def test_batch_norm_statistics_move_only_in_training():
    net, _ = model.create(8, num_classes=10, image_size=32)
    bn = net.get_layer("stage1_unit1_preact_bn")
    images = tf.random.normal((4, 32, 32, 3), mean=3.0)
    bn_input = tf.keras.Model(net.input, bn.input)(images)
    before = bn.moving_mean.numpy().copy()
    first = net(images, training=False).numpy()
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before)
    np.testing.assert_array_equal(net(images, training=False).numpy(), first)  # deterministic inference
    net(images, training=True)
    moved = bn.moving_mean.numpy()
    assert not np.allclose(moved, before)
    # One update with momentum 0.997 moves 0.3% of the way to the batch mean.
    batch_mean = tf.reduce_mean(bn_input, axis=(0, 1, 2)).numpy()
    expected = before * resnet_v2.BN_MOMENTUM + (1 - resnet_v2.BN_MOMENTUM) * batch_mean
    np.testing.assert_allclose(moved, expected, rtol=1e-4, atol=1e-6)


def test_weight_decay_applies_to_kernels_only():
    net, _ = model.create(8, num_classes=10, image_size=32)
    names = {v.path for v in model.weight_decay_variables(net)}
    assert names and all(n.endswith("/kernel") for n in names)
    assert len(names) == sum(1 for v in net.trainable_weights if v.path.endswith("/kernel"))


def test_summary_cli():
    out = subprocess.run([sys.executable, "-m", "model", "--depth=56", "--dataset=cifar10"],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()
    assert "cifar family, basic units" in out[0]
    assert out[-2] == "flops per image: 0.126 G multiply-adds"
    assert out[-1] == "params: total=860762 trainable=856698"
    bad = subprocess.run([sys.executable, "-m", "model", "--depth=51"], capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith("error: no CIFAR-family")
    assert "Traceback" not in bad.stderr


def test_fused_batch_norm_matches_keras_batch_norm():
    x = tf.random.normal((8, 6, 6, 5), mean=2.0, stddev=3.0, seed=1)
    ours = resnet_v2.batch_norm_factory(momentum=0.9)("ours")
    theirs = tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=resnet_v2.BN_EPSILON)
    for layer in (ours, theirs):
        layer.build(x.shape)
        layer.gamma.assign(np.linspace(0.5, 1.5, 5))
        layer.beta.assign(np.linspace(-1, 1, 5))
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours.moving_mean.numpy(), theirs.moving_mean.numpy(), rtol=1e-5)
    # TF1's fused kernel averages the Bessel-corrected batch variance (n = 8*6*6 values per channel).
    n = 8 * 6 * 6
    batch_variance = tf.math.reduce_variance(x, axis=(0, 1, 2)).numpy()
    np.testing.assert_allclose(ours.moving_variance.numpy(), 0.9 + 0.1 * batch_variance * n / (n - 1), rtol=1e-4)
    ours.moving_variance.assign(theirs.moving_variance.numpy())
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), rtol=1e-4, atol=1e-4)


def test_fused_batch_norm_without_scale_matches_keras():
    # Inception V3's batch norm has no gamma; the fused kernel then gets ones.
    x = tf.random.normal((8, 6, 6, 5), mean=2.0, stddev=3.0, seed=1)
    ours = resnet_v2.batch_norm_factory(momentum=0.9, scale=False)("ours")
    theirs = tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=resnet_v2.BN_EPSILON, scale=False)
    for layer in (ours, theirs):
        layer.build(x.shape)
        layer.beta.assign(np.linspace(-1, 1, 5))
    assert ours.gamma is None and len(ours.trainable_weights) == 1
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours.moving_mean.numpy(), theirs.moving_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), rtol=1e-3, atol=1e-3)


def _op_types(net, x, training=False):
    graph = tf.function(lambda x: net(x, training=training)).get_concrete_function(x).graph
    return [op.type for op in graph.get_operations()]


def test_the_depthwise_standalone_kernel_infers_what_the_fused_one_does():
    # Only the batch norms no Conv2D made change kernel: a ResNet v2's pre-activations and its postnorm.
    x = tf.random.normal((2, 32, 32, 3), seed=2)
    nets = {}
    for kernel in ("fused", "depthwise"):
        tf.keras.utils.set_random_seed(0)
        with model.standalone_kernel(kernel):
            nets[kernel], spec = model.create_model("resnet_v2", 10, 32, depth=8)
    assert resnet_v2.BatchNormalization.standalone_kernel == "fused"  # the context restores the default
    norms = [layer for layer in nets["fused"].layers if isinstance(layer, resnet_v2.BatchNormalization)]
    for i, layer in enumerate(norms):  # statistics away from (0, 1), the same in both networks
        for net in nets.values():
            twin = net.get_layer(layer.name)
            twin.moving_mean.assign(np.linspace(-1, 1, twin.moving_mean.shape[0]) * (i + 1) / len(norms))
            twin.moving_variance.assign(np.linspace(0.5, 2.0, twin.moving_variance.shape[0]))
            twin.gamma.assign(np.linspace(0.5, 1.5, twin.gamma.shape[0]))
    fused, depthwise = (tf.function(lambda x, n=n: n(x, training=False))(x) for n in nets.values())
    np.testing.assert_allclose(depthwise, fused, rtol=1e-5, atol=1e-5 * float(tf.reduce_max(tf.abs(fused))))
    np.testing.assert_array_equal(nets["fused"](x, training=True), nets["depthwise"](x, training=True))
    standalone = sum(layer.name.endswith(("preact_bn", "postnorm_bn")) for layer in norms)
    assert standalone == sum(spec.units) + 1
    assert _op_types(nets["depthwise"], x).count("DepthwiseConv2dNative") == standalone
    assert _op_types(nets["depthwise"], x).count("FusedBatchNormV3") == len(norms) - standalone
    assert "DepthwiseConv2dNative" not in _op_types(nets["fused"], x)
    with pytest.raises(ValueError, match="fused or depthwise"):
        with model.standalone_kernel("affine"):
            pass


def test_matmul_pointwise_convolutions_train_as_the_convolutions_do():
    # Bottleneck units, so that 1x1 convolutions are most of its layers.
    x = tf.random.normal((2, 32, 32, 3), seed=3)
    nets, grads = {}, {}
    for kernel in ("conv", "matmul"):
        tf.keras.utils.set_random_seed(0)
        with model.pointwise_kernel(kernel):
            nets[kernel], _ = model.create_model("resnet_v2", 10, 32, depth=11, unit="bottleneck")
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(nets[kernel](x, training=True)))
        grads[kernel] = tape.gradient(loss, nets[kernel].trainable_variables)
    assert resnet_v2.Conv2D.pointwise_kernel == "conv"  # the context restores the default
    for conv, matmul in zip(grads["conv"], grads["matmul"]):
        np.testing.assert_allclose(matmul, conv, rtol=1e-4, atol=1e-4 * float(tf.reduce_max(tf.abs(conv))))
    np.testing.assert_array_equal(nets["conv"](x, training=False), nets["matmul"](x, training=False))
    pointwise = sum(layer.kernel_size == (1, 1) and layer.strides == (1, 1)
                    for layer in nets["matmul"].layers if isinstance(layer, resnet_v2.Conv2D))
    assert pointwise > 0 and _op_types(nets["matmul"], x, training=True).count("MatMul") == pointwise + 1  # + head
    assert _op_types(nets["matmul"], x).count("MatMul") == 1  # inference keeps the convolutions Grappler folds
    with pytest.raises(ValueError, match="conv or matmul"):
        with model.pointwise_kernel("fft"):
            pass

