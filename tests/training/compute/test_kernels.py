"""The batch-norm inference kernel per device and dtype (kernels.NORM_RULES) and the networks it reaches."""
import pytest

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


def test_a_runs_network_takes_this_machines_kernel_unless_told(monkeypatch):
    monkeypatch.setattr(precision, "detect", lambda *args, **kwargs: CPU)
    config = dict(model="resnet_v2", image_size=32, depth=8, unit="auto", arch="auto", width=1.0, sync_bn=False,
                  bn_momentum=0.9, dtype="float32", num_gpus=0, strategy="auto")  # a saved config.json's fields

    def kernel_of(net):
        return {layer._standalone_kernel for layer in net.layers if isinstance(layer, resnet_v2.BatchNormalization)}
    assert kernel_of(network.create(config, 10)[0]) == {"depthwise"}
    assert kernel_of(network.create(config, 10, "bfloat16")[0]) == {"fused"}  # the dtype asked for, not the run's
    assert kernel_of(network.create(config, 10, norm_kernel="fused")[0]) == {"fused"}
    pointwise = {layer._pointwise_kernel for layer in network.create(config, 10)[0].layers
                 if isinstance(layer, resnet_v2.Conv2D)}
    assert pointwise == {"matmul"}
