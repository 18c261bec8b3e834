"""Which kernels a network computes with, and on what weights it infers, per device and compute dtype: tables, as
the dtype's is (precision.py). Measured with benchmark.py (docs/performance.md, "Per CPU class"); a device nobody
measured keeps TensorFlow's own kernels and variables."""
# (device, compute dtype or "*" for any, kernel, the measurement behind it): the first row that matches.
NORM_RULES = (  # a standalone batch norm in inference (model.resnet_v2.BatchNormalization)
    ("tpu", "*", "fused", "not measured: XLA compiles the graph whole"),
    ("gpu", "*", "fused", "not measured here (no GPU): cuDNN's fused batch norm"),
    ("cpu", "float32", "depthwise", "ResNet-152 forward, batch 32, on a 2-core Xeon with AMX: 1.13x with oneDNN "
                                    "held to AVX2, 1.08x unheld; logits within 1e-6 relative of the fused kernel's"),
    ("cpu", "*", "fused", "in bfloat16 the depthwise kernel rounds the scale, the shift and each product to "
                          "bfloat16: 1.7x the mean error of the fused kernel, which normalizes in float32 (and "
                          "its top-1 then differed from the exported model's), for 1.18x the speed"),
)
POINTWISE_RULES = (  # a 1x1, stride-1 convolution in training (model.resnet_v2.Conv2D)
    ("tpu", "*", "conv", "not measured: XLA compiles the graph whole"),
    ("gpu", "*", "conv", "not measured here (no GPU): cuDNN's convolution"),
    ("cpu", "float32", "matmul", "ResNet-50 train, batch 32, on a 2-core Xeon with AMX: 1.03-1.04x with oneDNN "
                                 "held to AVX2, the same unheld (3.31 s either way)"),
    ("cpu", "*", "conv", "not measured in bfloat16"),
)
SPATIAL_RULES = (  # a 3x3, stride-1 convolution where model/winograd.py applies (model.resnet_v2.Conv2D)
    ("tpu", "*", "conv", "not measured: XLA compiles the graph whole"),
    ("gpu", "*", "conv", "not measured here (no GPU): cuDNN picks its own algorithms, Winograd among them"),
    ("cpu", "float32", "winograd", "batch 32, on a 2-core Xeon with AMX, alternating: ResNet-152 forward 1.09x "
                                   "with oneDNN and XLA held to AVX2 and 1.07x unheld, ResNet-50 train 1.04x and "
                                   "the same; outputs within 3e-6 of the direct convolution's, relative to the "
                                   "largest"),
    ("cpu", "*", "conv", "not measured in bfloat16"),
)

WEIGHTS_RULES = (  # how inference holds the weights: eval.py's and benchmark.py's forward (network.for_inference)
    ("tpu", "*", "variables", "not measured: XLA compiles the graph whole"),
    ("gpu", "*", "variables", "not measured here (no GPU)"),
    ("cpu", "float32", "constants", "ResNet-152 forward, batch 32, on a 2-core Xeon with AMX: 1.06-1.17x with "
                                    "oneDNN held to AVX2 and 1.02-1.10x unheld on a busy host, the same on a "
                                    "quiet one; logits bitwise equal to the variables' (ResNet-50 and -20, "
                                    "either ISA)"),
    ("cpu", "*", "variables", "in bfloat16 the frozen graph's logits were not bitwise equal to the variables', "
                              "so eval.py would not reproduce the numbers the run logged"),
)


def norm_kernel(hardware, dtype):
    """(kernel, reason) for a standalone batch norm's inference in `dtype` (a resolved one) on the devices of
    `hardware` (precision.Hardware)."""
    return _first(NORM_RULES, hardware, dtype)


def pointwise_kernel(hardware, dtype):
    """(kernel, reason) for a 1x1 convolution in training, as norm_kernel."""
    return _first(POINTWISE_RULES, hardware, dtype)


def spatial_kernel(hardware, dtype):
    """(kernel, reason) for a 3x3 convolution, as norm_kernel."""
    return _first(SPATIAL_RULES, hardware, dtype)


def inference_weights(hardware, dtype):
    """(kind, reason): "constants" (a frozen graph, network.Frozen) or "variables", as norm_kernel."""
    return _first(WEIGHTS_RULES, hardware, dtype)


def _first(rules, hardware, dtype):
    device = "tpu" if hardware.tpu else "gpu" if hardware.gpus else "cpu"
    _, _, kernel, why = next(rule for rule in rules if rule[0] == device and rule[1] in (dtype, "*"))
    return kernel, why
