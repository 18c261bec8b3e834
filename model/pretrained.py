"""The published ResNet V2 ImageNet weights in our network: TF-slim checkpoints and Keras applications HDF5 files,
read by name and checked by shape. Every variable of the file lands in exactly one weight of ours and every weight
of ours gets one; anything left over or missing is an error naming it, never a silent skip.

    net, imported = load("keras:resnet50v2")          # also "slim:/path/resnet_v2_50.ckpt", "/path/x.h5"
"""
import dataclasses
import hashlib
import os
import re
import socket
import urllib.parse

import numpy as np

from model import pretrained_names as names, resnet_v2

SLIM_PREFIX, KERAS_PREFIX = "slim:", "keras:"
KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
# keras:NAME -> md5 of the file with the classifier and of the _notop one, as keras/src/applications/resnet.py
# publishes them (tests check they still agree).
KERAS_FILES = {
    "resnet50v2": ("3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917"),
    "resnet101v2": ("6343647c601c52e1368623803854d971", "c0ed64b8031c3730f411d2eb4eea35b5"),
    "resnet152v2": ("a49b44d1979771252814e80f8ec446f9", "ed17cf2e0169df9d443503ef94b23b33"),
}
NOTOP = "_notop"
DOWNLOAD_PROBE_TIMEOUT_S = 5.0  # an offline machine answers at once; a black-holed route would hang a download
# The publishers' input convention: RGB scaled to [-1, 1] (Inception's preprocessing, Keras' mode="tf").
NORMALIZATION = ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5))


class WeightsError(Exception):
    """A weight file that can't be imported, with a one-line reason naming the file and what does not fit."""


@dataclasses.dataclass(frozen=True)
class WeightFile:
    family: str      # 'slim' | 'keras'
    path: str        # the checkpoint prefix or the .h5 file
    shapes: dict     # variable name -> shape (slim: 'resnet_v2_50/conv1/weights'; Keras: 'conv1_conv/kernel')
    read: object     # name -> numpy array
    files: tuple     # the files on disk that hold it
    md5: str | None = None  # keras:NAME files: the published md5, verified


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
                         {os.path.basename(f): _sha256(f) for f in weights.files}, weights.md5)


def open_source(source):
    """The WeightFile a source names, downloading keras:NAME into the Keras cache when it is not there yet."""
    if source.startswith(KERAS_PREFIX):
        path, md5 = keras_download(source[len(KERAS_PREFIX):])
        return dataclasses.replace(_open_keras(path), md5=md5)
    path = source[len(SLIM_PREFIX):] if source.startswith(SLIM_PREFIX) else source
    if not source.startswith(SLIM_PREFIX) and os.path.isfile(path) and _is_hdf5(path):
        return _open_keras(path)
    return _open_slim(path)


def is_source(path):
    """Whether --init_checkpoint names published weights (rather than a train.py run)."""
    return path.startswith((SLIM_PREFIX, KERAS_PREFIX)) or (os.path.isfile(path) and _is_hdf5(path))


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


def keras_download(name):
    """(path, md5) of keras:NAME in the Keras cache, downloaded (md5-checked) if it is not there."""
    base = name[:-len(NOTOP)] if name.endswith(NOTOP) else name
    if base not in KERAS_FILES:
        valid = ", ".join(f"{n}, {n}{NOTOP}" for n in KERAS_FILES)
        raise WeightsError(f"unknown keras:{name}; Keras applications publishes ResNet V2 weights as {valid}")
    md5 = KERAS_FILES[base][name != base]
    file_name = f"{base}_weights_tf_dim_ordering_tf_kernels{NOTOP if name != base else ''}.h5"
    url, cache = KERAS_BASE_URL + file_name, _keras_cache()
    target = os.path.join(cache, "models", file_name)
    if os.path.exists(target):
        found = _md5(target)
        if found != md5:
            raise WeightsError(f"{target} is damaged (md5 {found}, published {md5}): delete it, or put a good copy "
                               f"of {url} there")
        return target, md5
    host = urllib.parse.urlsplit(url).hostname
    try:
        socket.create_connection((host, 443), timeout=DOWNLOAD_PROBE_TIMEOUT_S).close()
        import keras
        path = keras.utils.get_file(file_name, url, file_hash=md5, cache_dir=cache, cache_subdir="models")
    except Exception as e:  # noqa: BLE001 - DNS, refused, HTTP, md5: all mean "no file from the network"
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise WeightsError(f"can't download {url} ({reason}); on a machine without network, download it "
                           f"elsewhere and put it at {target}") from None
    return path, md5


def _keras_cache():
    """Where keras.utils.get_file keeps downloads: $KERAS_HOME, else ~/.keras (/tmp/.keras if not writable)."""
    base = os.path.expanduser(os.environ.get("KERAS_HOME") or os.path.join("~", ".keras"))
    try:
        os.makedirs(base, exist_ok=True)
    except OSError:
        pass
    return base if os.access(base, os.W_OK) else os.path.join("/tmp", ".keras")


def _open_slim(path):
    import tensorflow as tf
    prefix = _slim_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = {k: tuple(v) for k, v in reader.get_variable_to_shape_map().items()}
    except Exception as e:  # noqa: BLE001 - DataLoss, NotFound, a V1 file cut short: all "can't be read"
        raise WeightsError(f"can't read the checkpoint {prefix}: {_first_line(e)}") from None
    files = tuple(sorted(f for f in tf.io.gfile.glob(prefix + "*") if f == prefix or
                         re.fullmatch(re.escape(prefix) + r"\.(index|data-\d+-of-\d+)", f)))

    def read(name):
        try:
            return reader.get_tensor(name)
        except Exception as e:  # noqa: BLE001 - a damaged data file fails its checksum here
            raise WeightsError(f"{prefix} is damaged: {name} can't be read ({_first_line(e)})") from None
    return WeightFile("slim", prefix, shapes, read, files)


def _slim_prefix(path):
    """A checkpoint prefix from a prefix (V2: PREFIX.index beside it), a V1 file, or a folder holding one."""
    if os.path.isfile(path) or os.path.exists(path + ".index"):
        return path
    if not os.path.isdir(path):
        raise WeightsError(f"no checkpoint at {path} (give the prefix, e.g. DIR/resnet_v2_50.ckpt, or its folder)")
    found = sorted({f[:-len(".index")] for f in os.listdir(path) if f.endswith(".index")} |
                   {f for f in os.listdir(path) if f.endswith(".ckpt")})
    if len(found) != 1:
        what = f"{len(found)} checkpoints ({', '.join(found)})" if found else "no checkpoint (*.ckpt or *.index)"
        raise WeightsError(f"{path} holds {what}; give the checkpoint prefix")
    return os.path.join(path, found[0])


def _open_keras(path):
    import h5py
    try:
        f = h5py.File(path, "r")
        group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        shapes, datasets = {}, {}
        for layer in _strings(group.attrs["layer_names"]):
            for weight in _strings(group[layer].attrs.get("weight_names", [])):
                # Keras 2 wrote 'conv1_conv/kernel:0', Keras 3 'conv1_conv/kernel'.
                name = f"{layer}/{weight.split('/')[-1].split(':')[0]}"
                datasets[name] = group[layer][weight]
                shapes[name] = tuple(datasets[name].shape)
    except (OSError, KeyError, ValueError) as e:
        raise WeightsError(f"{path} is not a readable Keras weight file ({_first_line(e)})") from None

    def read(name):
        try:
            return np.asarray(datasets[name][()])
        except (OSError, ValueError) as e:
            raise WeightsError(f"{path} is damaged: {name} can't be read ({_first_line(e)})") from None
    return WeightFile("keras", path, shapes, read, (path,))


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


def _is_hdf5(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


def _strings(values):
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _sha256(path):
    return _digest(path, hashlib.sha256())


def _md5(path):
    return _digest(path, hashlib.md5())


def _digest(path, h):
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _first_line(error):
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return text.strip().splitlines()[0][:300]
