"""The published ResNet V2 ImageNet weights in our network: TF-slim checkpoints and Keras applications HDF5 files,
read by name and checked by shape. Every variable of the file lands in exactly one weight of ours and every weight
of ours gets one; anything left over or missing is an error naming it, never a silent skip.

    net, imported = load("keras:resnet50v2")          # also "slim:/path/resnet_v2_50.ckpt", "/path/x.h5"
"""
import dataclasses
import os
import re

from model import pretrained_names as names, resnet_v2
from model.weight_files import WeightsError, open_source, sha256

# The publishers' input convention: RGB scaled to [-1, 1] (Inception's preprocessing, Keras' mode="tf").
NORMALIZATION = ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5))


@dataclasses.dataclass(frozen=True)
class Imported:
    """What load() read: enough to describe the weights in a run's config.json."""
    family: str
    path: str
    depth: int
    include_top: bool
    file_classes: int | None  # classes of the file's classifier (slim: 1001 with background), None for _notop
    sha256: dict              # file name -> sha256
    md5: str | None

    def record(self):
        return dataclasses.asdict(self)


def load(source, depth=None, image_size=224, num_classes=names.IMAGENET_CLASSES):
    """(keras.Model, Imported) for a source: 'slim:PREFIX_OR_DIR', 'keras:NAME' or a .h5 / checkpoint path.
    depth None: read from the file (its units per stage). Raises WeightsError with a one-line message."""
    return load_weights(open_source(source), depth, image_size, num_classes)


def load_weights(weights, depth=None, image_size=224, num_classes=names.IMAGENET_CLASSES):
    """load() of an opened WeightFile."""
    file_units = units_per_stage(weights)
    file_depth = _depth_of(file_units)
    if depth is None and file_depth is None:
        raise WeightsError(f"{weights.path} has {', '.join(map(str, file_units))} units per stage, which fits no "
                           f"ResNet V2 depth ({', '.join(map(str, _bottleneck_depths()))})")
    depth = depth or file_depth
    if depth not in _bottleneck_depths():
        raise WeightsError(f"--depth={depth}: these weight layouts exist for the bottleneck depths "
                           f"{', '.join(map(str, _bottleneck_depths()))} only")
    head = _head_name(weights)
    net, _ = resnet_v2.create(depth, num_classes, image_size, arch="imagenet", include_top=head is not None)
    plan = _plan(net, weights, depth, file_units)
    for variable, name in plan:
        array = _convert(weights, name, weights.read(name), head)
        if tuple(array.shape) != tuple(variable.shape):
            raise WeightsError(f"{weights.path}: {name} has shape {list(weights.shapes[name])}, but "
                               f"{variable.path} needs {list(variable.shape)}")
        variable.assign(array)
    classes = int(weights.shapes[head][-1]) if head else None
    return net, Imported(weights.family, weights.path, depth, head is not None, classes,
                         {os.path.basename(f): sha256(f) for f in weights.files}, weights.md5)


def units_per_stage(weights):
    """Units per stage, read off the file's names; WeightsError naming the first variable of no ResNet V2."""
    pattern = names.SLIM_UNIT_PATTERN if weights.family == "slim" else names.KERAS_UNIT_PATTERN
    first_stage = 1 if weights.family == "slim" else names.KERAS_FIRST_STAGE
    counts = {}
    for name in _natural(weights.shapes):
        match = re.match(pattern, name)
        if match:
            stage, unit = int(match.group(1)) - first_stage, int(match.group(2))
            counts[stage] = max(counts.get(stage, 0), unit)
    if sorted(counts) != [0, 1, 2, 3]:
        example = "resnet_v2_50/block1/unit_1/bottleneck_v2/conv1/weights" if weights.family == "slim" else \
            "conv2_block1_1_conv/kernel"
        strays = [n for n in _natural(weights.shapes) if not re.match(pattern, n)] or _natural(weights.shapes)
        raise WeightsError(f"{weights.path} is not a ResNet V2 {weights.family} file: {strays[0]} does not fit "
                           f"(expected 4 stages of units named like {example})")
    return tuple(counts[s] for s in range(4))


def _plan(net, weights, depth, file_units):
    """[(our variable, the file's name for it)] covering both sides exactly; WeightsError naming the first
    name that does not fit."""
    scope = _slim_scope(weights)
    ours = {layer: (slim, keras) for layer, slim, keras in names.layer_names(resnet_v2.IMAGENET_DEPTHS[depth][1])}
    if any(layer.name == names.HEAD[0] for layer in net.layers):
        ours[names.HEAD[0]] = names.HEAD[1:]
    plan = []
    for layer in net.layers:
        for variable in layer.weights:
            if layer.name not in ours:
                raise WeightsError(f"internal: no imported name for {variable.path}")
            slim, keras = ours[layer.name]
            name = (f"{scope}/{slim}/{names.WEIGHTS[variable.name]}" if weights.family == "slim"
                    else f"{keras}/{variable.name}")
            if name not in weights.shapes:
                raise WeightsError(f"{weights.path} does not fit a ResNet V2 {depth}: it has no {name} "
                                   f"({_described(file_units)})")
            plan.append((variable, name))
    used = {name for _, name in plan}
    left = [n for n in _natural(weights.shapes) if n not in used and
            not (weights.family == "slim" and n in names.SLIM_BOOKKEEPING)]
    if left:
        raise WeightsError(f"{weights.path} does not fit a ResNet V2 {depth}: nothing of ours takes its {left[0]} "
                           f"({_described(file_units)})")
    return plan


def _convert(weights, name, array, head):
    """The file's array in our layout: slim's 1x1-conv classifier becomes a dense kernel, without background."""
    if head is None or weights.family != "slim" or name.rsplit("/", 1)[0] != head.rsplit("/", 1)[0]:
        return array
    array = array.reshape(array.shape[-2:]) if array.ndim == 4 else array
    return array[..., 1:]  # index 0 is slim's background class


def _head_name(weights):
    """The classifier's kernel name in the file, checked for ImageNet's classes; None for a _notop file."""
    if weights.family == "slim":
        name, classes = f"{_slim_scope(weights)}/{names.HEAD[1]}/weights", names.SLIM_CLASSES
    else:
        name, classes = f"{names.HEAD[2]}/kernel", names.IMAGENET_CLASSES
    if name not in weights.shapes:
        return None
    if weights.shapes[name][-1] != classes:
        raise WeightsError(f"{weights.path}: {name} has {weights.shapes[name][-1]} classes, not the {classes} of "
                           "the published ImageNet weights")
    return name


def _slim_scope(weights):
    if weights.family != "slim":
        return None
    scopes = {n.split("/")[0] for n in weights.shapes if "/" in n}
    fitting = sorted(s for s in scopes if re.fullmatch(r"resnet_v2_\d+", s))
    return fitting[0] if len(fitting) == 1 else "resnet_v2"


def _described(units):
    depth = _depth_of(units)
    return f"the file has {', '.join(map(str, units))} units per stage" + (f": --depth={depth}" if depth else "")


def _depth_of(units):
    return next((d for d, (unit, u) in resnet_v2.IMAGENET_DEPTHS.items() if unit == "bottleneck" and u == units),
                None)


def _bottleneck_depths():
    return [d for d, (unit, _) in resnet_v2.IMAGENET_DEPTHS.items() if unit == "bottleneck"]


def _natural(names_):
    """Sorted with numbers compared as numbers: unit_7 before unit_10."""
    return sorted(names_, key=lambda n: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", n)])
