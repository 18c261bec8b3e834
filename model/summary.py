"""What a model is, in numbers: parameter counts, multiply-adds per image, and the shape after each stage."""
import numpy as np
from keras import layers

from model.zoo import MODELS, ZooSpec


def parameter_counts(model):
    """(total, trainable) including batch-norm moving statistics in the total, as slim and Keras count."""
    total = sum(int(np.prod(v.shape)) for v in model.weights)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    return total, trainable


def flops_per_image(model):
    """Multiply-adds of the convolutions and dense layers for one image (the usual 'FLOPs' of the papers).

    Pools, batch norm, LRN, ReLU and additions are not counted. A Conv2D's kernel shape carries its own height and
    width, so Inception's 1x7 and 7x1 convolutions count 7, not 49, multiply-adds per input-output channel pair."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            total += h * w * kh * kw * cin * cout
        elif isinstance(layer, layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return total


def stage_outputs(model, spec):
    """[(stage, units, input (h, w), output (h, w, c))]: units run at the input size, the strided one shrinks it."""
    rows = []
    for stage, units in enumerate(spec.units, start=1):
        first = model.get_layer(f"stage{stage}_unit1_preact_bn").input.shape
        last = model.get_layer(f"stage{stage}_unit{units}_add").output.shape
        rows.append((stage, units, tuple(first[1:3]), tuple(last[1:])))
    return rows


def describe(model, spec):
    """The readable summary printed by `python -m model`; its last two lines are FLOPs and parameters."""
    lines = _describe_zoo(model, spec) if isinstance(spec, ZooSpec) else _describe_resnet(model, spec)
    total, trainable = parameter_counts(model)
    lines.append(f"flops per image: {flops_per_image(model) / 1e9:.3f} G multiply-adds")
    lines.append(f"params: total={total} trainable={trainable}")
    return "\n".join(lines)


def _describe_zoo(model, spec):
    top = "" if spec.include_top else ", without the top"
    lines = [f"{model.name}: {MODELS[spec.name].description}; {spec.variant}{top}",
             f"input: {tuple(model.input.shape[1:])}"]
    lines += [f"{name}: output {tuple(model.get_layer(name).output.shape[1:])}" for name in spec.stages]
    lines.append(f"{'logits' if spec.include_top else 'features'}: {tuple(model.output.shape[1:])}")
    return lines


def _describe_resnet(model, spec):
    lines = [f"{model.name}: {spec.family} family, {spec.unit} units, depth {spec.depth}, "
             f"units per stage {spec.units}, filters {spec.filters}",
             f"input: {tuple(model.input.shape[1:])}",
             "stem: " + ("3x3 stride-1 conv" if spec.small_stem else "7x7 stride-2 conv + 3x3 stride-2 max-pool")
             + f", {spec.stem_filters} filters -> {tuple(model.get_layer('stem_conv').output.shape[1:])}"]
    for stage, units, (h, w), out in stage_outputs(model, spec):
        lines.append(f"stage {stage}: {units} units at {h}x{w} -> output {out}")
    lines.append(f"logits: {tuple(model.output.shape[1:])}")
    return lines
