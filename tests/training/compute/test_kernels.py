"""The kernels.py tables per device and dtype (batch-norm inference, 1x1 convolutions in training, 3x3 ones in
training and inference, inference's weights) and the networks they reach."""
import numpy as np
import pytest
import tensorflow as tf

import model
from model import resnet_v2
from training.compute import kernels, network, precision

CPU = precision.Hardware("some CPU", frozenset({"avx2"}))


AMX = precision.Hardware("some CPU", frozenset({"avx512f", "amx_bf16"}))


@pytest.mark.parametrize("hardware, dtype, kernel", [
    (CPU, "float32", "depthwise"),
    (AMX, "float32", "depthwise"),  # every CPU class alike
    (AMX, "bfloat16", "fused"),  # normalized in float32, as the exported model is
    (precision.Hardware("some CPU", frozenset(), gpus=(("H100", (9, 0)),)), "float32", "fused"),
    (precision.Hardware("some CPU", frozenset(), gpus=(("H100", (9, 0)),)), "float16", "fused"),
    (precision.Hardware("some CPU", frozenset(), tpu=True), "bfloat16", "fused"),
])
def test_the_table_picks_by_device_and_dtype(hardware, dtype, kernel):
    chosen, why = kernels.norm_kernel(hardware, dtype)
    assert chosen == kernel and why


@pytest.mark.parametrize("hardware, dtype, kernel", [
    (CPU, "float32", "matmul"),
    (AMX, "float32", "matmul"),
    (AMX, "bfloat16", "conv"),
    (precision.Hardware("some CPU", frozenset(), gpus=(("H100", (9, 0)),)), "float32", "conv"),
    (precision.Hardware("some CPU", frozenset(), tpu=True), "float32", "conv"),
])
def test_the_pointwise_table_picks_by_device_and_dtype(hardware, dtype, kernel):
    chosen, why = kernels.pointwise_kernel(hardware, dtype)
    assert chosen == kernel and why


@pytest.mark.parametrize("hardware, dtype, kernel", [
    (CPU, "float32", "winograd"),
    (AMX, "float32", "winograd"),
    (AMX, "bfloat16", "conv"),
    (precision.Hardware("some CPU", frozenset(), gpus=(("H100", (9, 0)),)), "float32", "conv"),
    (precision.Hardware("some CPU", frozenset(), tpu=True), "float32", "conv"),
])
def test_the_spatial_table_picks_by_device_and_dtype(hardware, dtype, kernel):
    chosen, why = kernels.spatial_kernel(hardware, dtype)
    assert chosen == kernel and why


def test_a_runs_network_takes_this_machines_kernels_unless_portable(monkeypatch):
    monkeypatch.setattr(precision, "detect", lambda *args, **kwargs: CPU)
    config = dict(model="resnet_v2", image_size=32, depth=8, unit="auto", arch="auto", width=1.0, sync_bn=False,
                  bn_momentum=0.9, dtype="float32", num_gpus=0, strategy="auto")  # a saved config.json's fields

    def kernels_of(net):
        return ({layer._standalone_kernel for layer in net.layers if isinstance(layer, resnet_v2.BatchNormalization)},
                {(layer._pointwise_kernel, layer._spatial_kernel) for layer in net.layers
                 if isinstance(layer, resnet_v2.Conv2D)})
    assert kernels_of(network.create(config, 10)[0]) == ({"depthwise"}, {("matmul", "winograd")})
    # The dtype asked for, not the run's.
    assert kernels_of(network.create(config, 10, "bfloat16")[0]) == ({"fused"}, {("conv", "conv")})
    # Inference as TensorFlow's own kernels compute it; training as ever.
    assert kernels_of(network.create(config, 10, portable=True)[0]) == ({"fused"}, {("matmul", "conv")})


@pytest.mark.parametrize("hardware, dtype, kind", [
    (CPU, "float32", "constants"),
    (AMX, "float32", "constants"),
    (AMX, "bfloat16", "variables"),  # not bitwise what the run logged
    (precision.Hardware("some CPU", frozenset(), gpus=(("H100", (9, 0)),)), "float32", "variables"),
    (precision.Hardware("some CPU", frozenset(), tpu=True), "bfloat16", "variables"),
])
def test_the_weights_table_picks_by_device_and_dtype(hardware, dtype, kind):
    chosen, why = kernels.inference_weights(hardware, dtype)
    assert chosen == kind and why


@pytest.fixture(scope="module")
def trained_looking_net():
    """A depth-8 ResNet with this CPU's kernels and batch-norm statistics far from their initial 0 and 1."""
    with network.building_kernels(CPU, "float32"):
        net, _ = model.create_model("resnet_v2", 10, 32, depth=8)
    for i, variable in enumerate(net.variables):
        values = tf.random.stateless_uniform(variable.shape, seed=(i, 0), minval=0.5, maxval=1.5)
        variable.assign(values if "variance" in variable.path or "gamma" in variable.path else values - 1.0)
    return net


def test_a_frozen_network_infers_bitwise_as_its_variables_did_when_it_was_made(trained_looking_net):
    net = trained_looking_net
    images = tf.random.stateless_normal((4, 32, 32, 3), seed=(1, 2))
    live = tf.function(lambda x: net(x, training=False))
    frozen = network.Frozen(net)
    before = live(images).numpy()
    assert np.array_equal(frozen(images).numpy(), before)
    assert np.array_equal(tf.function(frozen)(images).numpy(), before)  # inside a graph, as the eval step calls it
    originals = [v.numpy() for v in net.trainable_variables]
    try:
        for variable in net.trainable_variables:
            variable.assign(variable * 1.5)
        changed = live(images).numpy()
        assert not np.array_equal(changed, before)
        assert np.array_equal(frozen(images).numpy(), before)  # its weights are fixed: take a new one after a restore
        assert np.array_equal(network.Frozen(net)(images).numpy(), changed)
    finally:
        for variable, value in zip(net.trainable_variables, originals):
            variable.assign(value)
    with pytest.raises(ValueError, match="only infers"):
        frozen(images, training=True)


def test_a_frozen_network_with_winograd_convolutions_infers_bitwise_as_its_variables_do():
    # 256 channels, so that winograd.applies: the frozen graph folds the transformed kernel into a constant.
    with network.building_kernels(CPU, "float32"):
        inputs = tf.keras.Input((6, 6, 256))
        x = resnet_v2.Conv2D(256, 3, padding="same", name="a")(inputs)
        net = tf.keras.Model(inputs, resnet_v2.Conv2D(4, 3, padding="same", name="b")(tf.keras.layers.ReLU()(x)))
    images = tf.random.stateless_normal((2, 6, 6, 256), seed=(5, 6))
    live = tf.function(lambda x: net(x, training=False))
    assert "BatchMatMulV2" in [op.type for op in live.get_concrete_function(images).graph.get_operations()]
    assert np.array_equal(network.Frozen(net)(images).numpy(), live(images).numpy())


def test_inference_freezes_as_the_table_says_and_on_one_replica_only(trained_looking_net):
    net = trained_looking_net
    assert isinstance(network.for_inference(net, CPU, "float32"), network.Frozen)
    assert network.for_inference(net, CPU, "float32", replicas=2) is net
    assert network.for_inference(net, AMX, "bfloat16") is net
