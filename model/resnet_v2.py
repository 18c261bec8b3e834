"""ResNet V2 (pre-activation) networks: the depth table, the two residual units, and the network.

The ImageNet family is the classic slim `resnet_v2_50/101/152/200` layer for layer (parameter counts equal,
tests pin them); the CIFAR family is the classic CIFAR `resnet_model.py` (He et al., "Identity Mappings in Deep
Residual Networks", 2016). Layer names are stable so checkpoints survive refactors.
"""
import contextlib
import dataclasses

import keras
import tensorflow as tf
from keras import layers

from model import winograd

# The chapter's `resnet_arg_scope`: batch norm with decay 0.997, epsilon 1e-5 and a learned scale.
BN_MOMENTUM = 0.997
BN_EPSILON = 1e-5

# ImageNet family: depth -> (unit, units per stage). Filters and strides are shared by every depth of a unit.
IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
# Output depth of each stage; a bottleneck unit's inner width is a quarter of it (slim's depth_bottleneck).
IMAGENET_FILTERS = {"basic": (64, 128, 256, 512), "bottleneck": (256, 512, 1024, 2048)}
# slim puts the stride-2 on the *last* unit of stages 1-3: Block('block1', [(256, 64, 1)] * 2 + [(256, 64, 2)]).
IMAGENET_STRIDES = (2, 2, 2, 1)

# CIFAR family: depth = units_per_stage * layers_per_unit * 3 + 2 (stem conv + logits).
CIFAR_LAYERS_PER_UNIT = {"basic": 2, "bottleneck": 3}
CIFAR_FILTERS = {"basic": (16, 32, 64), "bottleneck": (64, 128, 256)}
# The classic CIFAR code strides the *first* unit of stages 2 and 3.
CIFAR_STRIDES = (1, 2, 2)
CIFAR_STEM_FILTERS = 16
# Depths that fit both rules (depth - 2 divisible by 18) follow the classic names: ResNet-20/56/110 are basic,
# ResNet-164 is bottleneck ("Identity Mappings", sec. 4), so bottleneck wins from this depth on.
CIFAR_BOTTLENECK_FROM = 164

SMALL_IMAGE_MAX = 64  # images up to this size get a 3x3 stride-1 stem without max-pool


@dataclasses.dataclass(frozen=True)
class Spec:
    """Everything that decides the network's shape, derived once from the user's choices."""
    family: str             # 'imagenet' | 'cifar'
    depth: int
    unit: str               # 'basic' | 'bottleneck'
    units: tuple            # units per stage
    filters: tuple          # output depth per stage
    strides: tuple          # stride per stage
    stride_on_last: bool    # where in the stage the stride sits (slim: last unit; CIFAR code: first)
    small_stem: bool        # 3x3 stride-1 stem, no max-pool (inputs <= 64 px)
    stem_filters: int

    def unit_strides(self, stage):
        """Stride of each unit of `stage`."""
        n, stride = self.units[stage], self.strides[stage]
        where = n - 1 if self.stride_on_last else 0
        return tuple(stride if i == where else 1 for i in range(n))


def _valid_cifar_depths(unit, shown=6):
    per_stage = CIFAR_LAYERS_PER_UNIT[unit] * 3
    listed = [per_stage * n + 2 for n in range(1, shown + 1)]
    return f"{', '.join(map(str, listed))}, ... ({per_stage}n+2)"


def resolve(depth, unit="auto", arch="auto", width=1.0, image_size=224):
    """Turns (depth, unit, arch, width, image size) into a Spec, or raises ValueError naming valid depths."""
    if unit not in ("auto", "basic", "bottleneck"):
        raise ValueError(f"--unit must be auto, basic or bottleneck, not {unit!r}")
    if arch not in ("auto", "cifar", "imagenet"):
        raise ValueError(f"--arch must be auto, cifar or imagenet, not {arch!r}")
    if width <= 0:
        raise ValueError(f"--width must be positive, not {width}")
    if arch == "imagenet" or (arch == "auto" and depth in IMAGENET_DEPTHS):
        return _resolve_imagenet(depth, unit, width, image_size)
    return _resolve_cifar(depth, unit, width)


def _resolve_imagenet(depth, unit, width, image_size):
    if depth not in IMAGENET_DEPTHS or unit not in ("auto", IMAGENET_DEPTHS[depth][0]):
        valid = [d for d, (u, _) in IMAGENET_DEPTHS.items() if unit in ("auto", u)]
        raise ValueError(f"no ImageNet-family ResNet of depth {depth} with unit={unit}; "
                         f"valid depths: {', '.join(map(str, valid))}")
    unit, units = IMAGENET_DEPTHS[depth]
    return Spec("imagenet", depth, unit, units, _widen(IMAGENET_FILTERS[unit], width), IMAGENET_STRIDES,
                stride_on_last=True, small_stem=image_size <= SMALL_IMAGE_MAX, stem_filters=64)


def _resolve_cifar(depth, requested_unit, width):
    unit = requested_unit
    if unit == "auto":
        fits_basic, fits_bottleneck = (depth - 2) % 6 == 0, (depth - 2) % 9 == 0
        prefer_bottleneck = fits_bottleneck and (not fits_basic or depth >= CIFAR_BOTTLENECK_FROM)
        unit = "bottleneck" if prefer_bottleneck else "basic"
    per_stage_layers = CIFAR_LAYERS_PER_UNIT[unit] * 3
    if depth < per_stage_layers + 2 or (depth - 2) % per_stage_layers:
        units = ("basic", "bottleneck") if requested_unit == "auto" else (unit,)
        valid = "; ".join(f"{u} {_valid_cifar_depths(u)}" for u in units)
        imagenet = f"; ImageNet family {', '.join(map(str, IMAGENET_DEPTHS))}" if requested_unit == "auto" else ""
        raise ValueError(f"no CIFAR-family ResNet of depth {depth} with unit={requested_unit}; "
                         f"valid depths: {valid}{imagenet}")
    n = (depth - 2) // per_stage_layers
    return Spec("cifar", depth, unit, (n, n, n), _widen(CIFAR_FILTERS[unit], width), CIFAR_STRIDES,
                stride_on_last=False, small_stem=True, stem_filters=CIFAR_STEM_FILTERS)


def _widen(filters, width):
    return tuple(int(round(f * width)) for f in filters)


@keras.saving.register_keras_serializable(package="resnet_v2")
class BatchNormalization(layers.BatchNormalization):
    """Keras batch norm whose moving statistics are averaged over replicas at every update.

    Keras 3 creates them with aggregation 'none', and under MirroredStrategy each replica then moves its own copy
    while checkpoints save only the first: the statistics drift apart silently. With 'mean' each update is
    all-reduced, so every replica holds the same moving average of the replicas' batch statistics. Variable names
    are Keras' own, so checkpoints are unaffected.

    update_moving_statistics=False (read when a call is traced): training mode normalizes with the batch's
    statistics but leaves the moving ones alone, for recomputing them (training/compute/bn_stats.py).
    """
    update_moving_statistics = True
    # How inference normalizes a tensor that no convolution just produced (ResNet v2's pre-activations, which
    # follow an addition): "fused", TensorFlow's FusedBatchNorm (Grappler folds the one that follows a Conv2D into
    # it, whatever this says), or "depthwise", a per-channel 1x1 depthwise convolution with bias, which Grappler
    # fuses with the ReLU after it. Read when a layer is built (standalone_kernel()); the table that picks it per
    # device and dtype is training/compute/kernels.py.
    standalone_kernel = "fused"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._standalone_kernel = type(self).standalone_kernel

    def add_weight(self, *args, **kwargs):
        if not kwargs.get("trainable", True):
            kwargs.setdefault("aggregation", "mean")
        return super().add_weight(*args, **kwargs)

    def call(self, inputs, training=None, mask=None):
        """One fused kernel (normalize, scale, shift and, in training, the moving-average update) instead of the
        dozen ops Keras 3 composes: 1.23x faster ResNet-50 training here. Like TF1's fused batch norm, the moving
        variance averages the Bessel-corrected batch variance. Synchronized batch norm keeps Keras' own path."""
        if self.synchronized or len(inputs.shape) != 4 or self.axis not in (-1, 3):
            if not self.update_moving_statistics and training and self.trainable:
                raise NotImplementedError("recomputing statistics needs the fused path (4-D inputs, no sync BN)")
            return super().call(inputs, training=training, mask=mask)
        # Without a learned scale (Inception V3's scale=False) or offset, the fused kernel still wants one.
        gamma = self.gamma if self.scale else tf.ones_like(self.moving_mean)
        beta = self.beta if self.center else tf.zeros_like(self.moving_mean)
        if training and self.trainable:  # frozen, it normalizes with its moving statistics, as Keras' does
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, is_training=True, exponential_avg_factor=1.0 - self.momentum)
            if self.update_moving_statistics:
                self.moving_mean.assign(mean)
                self.moving_variance.assign(variance)
            return outputs
        if self._standalone_kernel == "depthwise" and not _made_by_a_convolution(inputs):
            # y = x * scale + shift in one kernel: oneDNN's batch-norm inference (with its ReLU) took 1.8-3.6x as
            # long as this on a CPU held to AVX2 (docs/performance.md).
            scale = gamma * tf.math.rsqrt(self.moving_variance + self.epsilon)
            shift = beta - self.moving_mean * scale
            channels = inputs.shape[-1]
            outputs = tf.nn.depthwise_conv2d(inputs, tf.reshape(tf.cast(scale, inputs.dtype), (1, 1, channels, 1)),
                                             (1, 1, 1, 1), "VALID")
            return tf.nn.bias_add(outputs, tf.cast(shift, inputs.dtype))
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, mean=self.moving_mean, variance=self.moving_variance,
            epsilon=self.epsilon, is_training=False)
        return outputs


def _made_by_a_convolution(tensor):
    """True where Grappler folds the batch norm into the op that made `tensor` (its Conv2D + FusedBatchNorm
    pattern); False eagerly, where there is no graph to fold in."""
    try:
        return tensor.op.type == "Conv2D"
    except AttributeError:  # an eager tensor has no op
        return False


@keras.saving.register_keras_serializable(package="resnet_v2")
class Conv2D(layers.Conv2D):
    """Keras' Conv2D, but a 1x1, stride-1 one in training can compute as a matrix multiplication (its gradients are
    then matrix multiplications too): "matmul" took 0.96-0.97x the time of oneDNN's convolution for ResNet-50
    training with oneDNN held to AVX2, and the same unheld with AMX (docs/performance.md). Inference keeps the
    convolution, which Grappler folds the next batch norm into. And a 3x3, stride-1 one can compute as Winograd's
    F(2x2, 3x3) ("winograd", model/winograd.py; in training its input gradient too) where that is faster than the
    direct convolution (winograd.applies). Read when a layer is built (pointwise_kernel(), spatial_kernel()); the
    tables that pick them per device and dtype are training/compute/kernels.py."""
    pointwise_kernel = "conv"
    spatial_kernel = "conv"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pointwise_kernel = type(self).pointwise_kernel
        self._spatial_kernel = type(self).spatial_kernel

    def call(self, inputs, training=None):
        if self._spatial_kernel == "winograd" and winograd.applies(self, inputs):
            kernel = tf.cast(tf.convert_to_tensor(self.kernel), inputs.dtype)
            outputs = (winograd.conv2d_for_training(inputs, kernel) if training
                       else winograd.conv2d(inputs, winograd.transform_kernel(kernel)))
            if self.use_bias:
                outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, outputs.dtype))
            return self.activation(outputs)
        if not (training and self._pointwise_kernel == "matmul" and self.kernel_size == (1, 1)
                and self.strides == (1, 1) and self.data_format == "channels_last"):
            return super().call(inputs)
        channels_in, channels_out = self.kernel.shape[2:]
        outputs = tf.matmul(tf.reshape(inputs, (-1, channels_in)),
                            tf.reshape(tf.cast(self.kernel, inputs.dtype), (channels_in, channels_out)))
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, outputs.dtype))
        return self.activation(tf.reshape(outputs, tf.concat([tf.shape(inputs)[:3], [channels_out]], 0)))


def standalone_kernel(kernel):
    """Batch norms built inside take `kernel` ("fused" or "depthwise") for their standalone inference."""
    return _built_with(BatchNormalization, "standalone_kernel", kernel, ("fused", "depthwise"))


def pointwise_kernel(kernel):
    """1x1 convolutions built inside take `kernel` ("conv" or "matmul") in training."""
    return _built_with(Conv2D, "pointwise_kernel", kernel, ("conv", "matmul"))


def spatial_kernel(kernel):
    """3x3 convolutions built inside take `kernel` ("conv" or "winograd")."""
    return _built_with(Conv2D, "spatial_kernel", kernel, ("conv", "winograd"))


@contextlib.contextmanager
def _built_with(cls, setting, value, choices):
    if value not in choices:
        raise ValueError(f"{cls.__name__}.{setting} is {' or '.join(choices)}, not {value!r}")
    previous = getattr(cls, setting)
    setattr(cls, setting, value)
    try:
        yield
    finally:
        setattr(cls, setting, previous)


def batch_norm_factory(sync=False, momentum=BN_MOMENTUM, scale=True):
    """name -> batch-norm layer, with the settings every unit of one network shares (scale=False: no gamma)."""
    return lambda name: BatchNormalization(momentum=momentum, epsilon=BN_EPSILON, scale=scale, synchronized=sync,
                                           name=name)


def _conv(filters, kernel, stride, name, use_bias=False):
    # He initialization (variance scaling, fan-in, truncated normal), as slim's resnet_arg_scope.
    return Conv2D(filters, kernel, strides=stride, padding="same" if stride == 1 else "valid",
                  use_bias=use_bias, kernel_initializer="he_normal", name=name)


def _conv_same(x, filters, kernel, stride, name, use_bias=False):
    """slim's conv2d_same: a strided conv pads explicitly and symmetrically, unlike TF's asymmetric SAME."""
    if stride > 1:
        pad = kernel - 1
        x = layers.ZeroPadding2D(((pad // 2, pad - pad // 2),) * 2, name=name + "_pad")(x)
    return _conv(filters, kernel, stride, name, use_bias)(x)


def _shortcut(x, preact, filters, stride, name):
    if x.shape[-1] == filters:
        # Same depth: the input itself (not pre-activated), subsampled like slim's 1x1 max-pool of stride s.
        return x if stride == 1 else layers.MaxPooling2D(1, stride, name=name + "_shortcut")(x)
    # New depth: a 1x1 projection with bias and no BN, applied to the *pre-activated* input.
    return _conv(filters, 1, stride, name + "_shortcut", use_bias=True)(preact)


def bottleneck_unit(x, filters, stride, name, norm):
    """BN-ReLU, 1x1 (filters/4), BN-ReLU, 3x3 strided, BN-ReLU, 1x1 (filters, with bias); shortcut added."""
    preact = layers.ReLU(name=name + "_preact_relu")(norm(name + "_preact_bn")(x))
    shortcut = _shortcut(x, preact, filters, stride, name)
    y = _conv(filters // 4, 1, 1, name + "_conv1")(preact)
    y = layers.ReLU(name=name + "_conv1_relu")(norm(name + "_conv1_bn")(y))
    y = _conv_same(y, filters // 4, 3, stride, name + "_conv2")
    y = layers.ReLU(name=name + "_conv2_relu")(norm(name + "_conv2_bn")(y))
    # The last conv has no BN after it (the next unit's pre-activation normalizes), so slim gives it a bias.
    y = _conv(filters, 1, 1, name + "_conv3", use_bias=True)(y)
    return layers.Add(name=name + "_add")([shortcut, y])


def basic_unit(x, filters, stride, name, norm):
    """BN-ReLU, 3x3 strided, BN-ReLU, 3x3 (with bias); shortcut added."""
    preact = layers.ReLU(name=name + "_preact_relu")(norm(name + "_preact_bn")(x))
    shortcut = _shortcut(x, preact, filters, stride, name)
    y = _conv_same(preact, filters, 3, stride, name + "_conv1")
    y = layers.ReLU(name=name + "_conv1_relu")(norm(name + "_conv1_bn")(y))
    y = _conv(filters, 3, 1, name + "_conv2", use_bias=True)(y)
    return layers.Add(name=name + "_add")([shortcut, y])


UNITS = {"basic": basic_unit, "bottleneck": bottleneck_unit}


def stem(x, spec):
    """v2 stem: a plain conv with bias; its BN-ReLU is the first unit's pre-activation."""
    if spec.small_stem:
        return _conv(spec.stem_filters, 3, 1, "stem_conv", use_bias=True)(x)
    x = _conv_same(x, spec.stem_filters, 7, 2, "stem_conv", use_bias=True)
    return layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)


def build(spec, num_classes, image_size, sync_bn=False, bn_momentum=BN_MOMENTUM, name=None, include_top=True):
    """The Keras functional model for `spec`: NHWC float images in, float32 logits out (include_top=False: the
    pooled features, a backbone for fine-tuning)."""
    norm = batch_norm_factory(sync_bn, bn_momentum)
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = stem(inputs, spec)
    for stage in range(len(spec.units)):
        for i, stride in enumerate(spec.unit_strides(stage)):
            x = UNITS[spec.unit](x, spec.filters[stage], stride, f"stage{stage + 1}_unit{i + 1}", norm)
    # v2 "postnorm": the last unit's output has not been normalized yet.
    x = layers.ReLU(name="postnorm_relu")(norm("postnorm_bn")(x))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if not include_top:
        return keras.Model(inputs, x, name=name or f"resnet_v2_{spec.depth}_notop")
    # Logits stay float32 under mixed precision, so the softmax and loss are computed in full precision.
    logits = layers.Dense(num_classes, kernel_initializer="he_normal", dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=name or f"resnet_v2_{spec.depth}")


def create(depth, num_classes, image_size, unit="auto", arch="auto", width=1.0, sync_bn=False,
           bn_momentum=BN_MOMENTUM, include_top=True):
    """Resolves the choices and builds the model; raises ValueError for an impossible depth."""
    spec = resolve(depth, unit, arch, width, image_size)
    return build(spec, num_classes, image_size, sync_bn, bn_momentum, include_top=include_top), spec


def weight_decay_variables(model):
    """The variables L2 weight decay applies to: trainable conv and dense kernels (not biases, not BN)."""
    return [layer.kernel for layer in model.layers
            if isinstance(layer, (layers.Conv2D, layers.Dense)) and layer.trainable]
