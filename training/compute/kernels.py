"""Which kernel inference normalizes a standalone batch norm with, per device and compute dtype: a table, as the
dtype's is (precision.py). Measured with benchmark.py's forward mode (docs/performance.md, "Per CPU class", its
batch norm in inference); a device nobody measured keeps TensorFlow's fused kernel."""
# (device, compute dtype or "*" for any, kernel, the measurement behind it): the first row that matches.
NORM_RULES = (
    ("tpu", "*", "fused", "not measured: XLA compiles the graph whole"),
    ("gpu", "*", "fused", "not measured here (no GPU): cuDNN's fused batch norm"),
    ("cpu", "float32", "depthwise", "ResNet-152 forward, batch 32, on a 2-core Xeon with AMX: 1.13x with oneDNN "
                                    "held to AVX2, 1.08x unheld; logits within 1e-6 relative of the fused kernel's"),
    ("cpu", "*", "fused", "in bfloat16 the depthwise kernel rounds the scale, the shift and each product to "
                          "bfloat16: 1.7x the mean error of the fused kernel, which normalizes in float32 (and "
                          "its top-1 then differed from the exported model's), for 1.18x the speed"),
)


def norm_kernel(hardware, dtype):
    """(kernel, reason) for computing in `dtype` (a resolved one) on the devices of `hardware`
    (precision.Hardware)."""
    device = "tpu" if hardware.tpu else "gpu" if hardware.gpus else "cpu"
    _, _, kernel, why = next(rule for rule in NORM_RULES if rule[0] == device and rule[1] in (dtype, "*"))
    return kernel, why
