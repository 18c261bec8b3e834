"""Which kernel inference normalizes a standalone batch norm with, per device: a table, as the dtype's is
(precision.py). Measured with benchmark.py's forward mode (docs/performance.md, "Batch norm in inference"); a
device nobody measured keeps TensorFlow's fused kernel."""
# (device, kernel, the measurement behind it); the first row that matches decides.
NORM_RULES = (
    ("tpu", "fused", "not measured: XLA compiles the graph whole"),
    ("gpu", "fused", "not measured here (no GPU): cuDNN's fused batch norm"),
    ("cpu", "depthwise", "ResNet-152 forward, batch 32, on a 2-core Xeon with AMX: 1.13x float32 with oneDNN "
                         "held to AVX2, 1.08x float32 and 1.18x bfloat16 unheld"),
)


def norm_kernel(hardware):
    """(kernel, reason) for the devices of `hardware` (precision.Hardware)."""
    device = "tpu" if hardware.tpu else "gpu" if hardware.gpus else "cpu"
    _, kernel, why = next(rule for rule in NORM_RULES if rule[0] == device)
    return kernel, why

