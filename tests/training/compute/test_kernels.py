"""The batch-norm inference kernel per device (kernels.NORM_RULES) and the networks it reaches."""
import pytest

from model import resnet_v2
from training.compute import kernels, network, precision

CPU = precision.Hardware("some CPU", frozenset({"avx2"}))


@pytest.mark.parametrize("hardware, kernel", [
    (CPU, "depthwise"),
    (precision.Hardware("some CPU", frozenset({"avx512f", "amx_bf16"})), "depthwise"),  # every CPU class alike
    (precision.Hardware("some CPU", frozenset(), gpus=(("H100", (9, 0)),)), "fused"),
    (precision.Hardware("some CPU", frozenset(), tpu=True), "fused"),
])
def test_the_table_picks_by_device(hardware, kernel):
    chosen, why = kernels.norm_kernel(hardware)
    assert chosen == kernel and why


def test_a_runs_network_takes_this_machines_kernel_unless_told(monkeypatch):
    monkeypatch.setattr(precision, "detect", lambda *args, **kwargs: CPU)
    config = dict(model="resnet_v2", image_size=32, depth=8, unit="auto", arch="auto", width=1.0, sync_bn=False,
                  bn_momentum=0.9, dtype="float32", num_gpus=0, strategy="auto")  # a saved config.json's fields

    def kernel_of(net):
        return {layer._standalone_kernel for layer in net.layers if isinstance(layer, resnet_v2.BatchNormalization)}
    assert kernel_of(network.create(config, 10)[0]) == {"depthwise"}
    assert kernel_of(network.create(config, 10, norm_kernel="fused")[0]) == {"fused"}
