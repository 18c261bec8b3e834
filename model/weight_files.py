"""The published weight files as they are on disk: TF-slim checkpoints (a prefix or its folder, the V2 and the old
V1 format), Keras applications HDF5 files, and keras:NAME downloads into the Keras cache, md5-checked. Each opens
as a WeightFile of names and shapes, read lazily; a file that can't be read is a one-line WeightsError."""
import dataclasses
import hashlib
import os
import re
import socket
import urllib.parse

import numpy as np

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


def _is_hdf5(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


def _strings(values):
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def sha256(path):
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
