"""Dataset names -> DatasetInfo, and one split of a dataset as examples the pipeline can read (tfds or folder)."""
import dataclasses
import difflib
import os
import socket
import threading
import urllib.parse
from typing import Callable, Optional

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow.python.util import deprecation

from data import folder, integrity, preprocessing, splits
from data.prepare import shrink
from data.info import (DEFAULT_LARGE_IMAGE_SIZE, DEFAULT_NORMALIZATION, NORMALIZATION, SMALL_IMAGE_MAX_SIDE,
                       DataError, DatasetInfo, resized_fields)

FOLDER_PREFIX = "folder:"
KNOWN_DATASETS = ("cifar10", "cifar100", "imagenet2012", "folder:/path",
                  "or any tfds image-classification dataset (e.g. imagenette, oxford_flowers102)")
# Long enough for a TCP handshake on a slow link, short enough that an offline machine answers promptly.
REACHABILITY_TIMEOUT_S = 3.0


@dataclasses.dataclass(frozen=True)
class Split:
    """One split. `records` yields (raw, label) in a fixed order; `lookup(index)` gives the same by index when
    the split is addressable (in memory, or a file list). raw is a uint8 image for small-image datasets
    (decoded once, held in memory) and encoded image bytes otherwise."""
    size: int
    records: tf.data.Dataset
    lookup: Optional[Callable] = None


def get_info(dataset: str, data_dir: Optional[str] = None, image_size: Optional[int] = None, *,
             strict: bool = False, validation_split: Optional[float] = 0.0,
             test_split: Optional[float] = None) -> DatasetInfo:
    """Describes a dataset, preparing it first if it is a tfds dataset that can be downloaded.

    Args:
      dataset: 'cifar10', 'cifar100', 'imagenet2012', another tfds image-classification name, or 'folder:/path'.
      data_dir: tfds data dir (None: tfds default, which honours TFDS_DATA_DIR); folders cache there if read-only.
      image_size: model input size for large images (default 224); small images keep their own size.
      strict: folders only: the first unreadable image file is a DataError instead of being skipped.
      validation_split: the fraction of the training split held out for validation (data/splits.py); None:
        the dataset's own validation split where it has one beside its test split, else 10 % (at most 10,000
        images); 0: no validation split.
      test_split: flat folders only (<class>/*, no train/): the fraction held out as the test split (None: 10 %).

    Returns:
      A DatasetInfo.

    Raises:
      DataError: unknown dataset, dataset not prepared and no network, a problem with a folder, or split
        fractions that can't work.
    """
    for name, value in (("validation_split", validation_split), ("test_split", test_split)):
        try:
            splits.check_fraction(name, value or 0.0)
        except ValueError as e:
            raise DataError(str(e)) from None
    if dataset.startswith(FOLDER_PREFIX):
        return folder.get_info(dataset[len(FOLDER_PREFIX):], data_dir, image_size, strict=strict,
                               validation_split=validation_split, test_split=test_split)
    if test_split is not None:
        raise DataError(f"--test_split carves a test split out of a flat folder (<class>/*); {dataset} has its own "
                        "test split: leave --test_split out")
    builder = _builder(dataset, data_dir)
    if not builder.is_prepared():
        _download_or_explain(builder, dataset, data_dir)
    return _tfds_info(dataset, builder, image_size, validation_split)


def load_split(info: DatasetInfo, role: str, data_dir: Optional[str] = None, *,
               shuffle_seed: Optional[int] = None) -> Split:
    """Reads the examples of one role ('train', 'validation' or 'test') of the dataset `info` describes: its
    source split, less what data/splits.py holds out of it. shuffle_seed shuffles the order of a streamed split's
    files (the same order every epoch); addressable splits ignore it."""
    source, carve = splits.source(info, role)
    expected = {"train": info.num_train, "validation": info.num_validation, "test": info.num_eval}[role]
    if info.name.startswith(FOLDER_PREFIX):
        paths, labels = folder.read_split(info.name[len(FOLDER_PREFIX):], source, data_dir, carve, role)
        files = tf.data.Dataset.from_tensor_slices((paths, labels))
        if info.small_images:
            return _in_memory(files.map(_read_image_file, num_parallel_calls=tf.data.AUTOTUNE), info, role,
                              expected)
        _expect_size(info, role, len(labels), expected)
        paths, labels = tf.constant(paths), tf.constant(labels, tf.int32)
        return Split(len(labels), files.map(lambda p, y: (tf.io.read_file(p), y)),
                     lambda i: (tf.io.read_file(tf.gather(paths, i)), tf.gather(labels, i)))
    builder = _builder(info.name, data_dir)
    if not builder.is_prepared():  # a run imported or trained elsewhere, read where its data is not
        from data import prepare
        raise DataError(f"{info.name} is not prepared {_where(data_dir)}; "
                        f"{prepare.how_to_prepare(info.name, data_dir)}")
    held_out = carve is not None
    if info.small_images:
        with deprecation.silence():  # tfds' id counter uses a deprecated tf.data op: a warning users can't act on
            ds = builder.as_dataset(split=source, shuffle_files=False,
                                    read_config=tfds.ReadConfig(add_tfds_id=held_out))
        try:
            examples = _keep(ds, builder, source, carve, role).map(lambda ex: (ex["image"], ex["label"]))
            return _in_memory(examples, info, role, expected)
        except tf.errors.DataLossError as e:
            raise integrity.damaged(info, data_dir, e, splits=(source,)) from None
    # Large images stay encoded so training can decode only the random crop (tf.image.decode_and_crop_jpeg).
    read_config = tfds.ReadConfig(shuffle_seed=shuffle_seed, shuffle_reshuffle_each_iteration=False,
                                  add_tfds_id=held_out)
    with deprecation.silence():
        ds = builder.as_dataset(split=source, shuffle_files=shuffle_seed is not None, read_config=read_config,
                                decoders={"image": tfds.decode.SkipDecoding()})
    examples = _keep(ds, builder, source, carve, role)
    return Split(expected, examples.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32))))


def _keep(ds: tf.data.Dataset, builder, source: str, carve, role: str) -> tf.data.Dataset:
    """The tfds examples of `role`, or all of them without a carve. Which ids belong to it is decided in Python
    (data/splits.py) and looked up in the pipeline: shard file -> its first position in one mask of the split."""
    if carve is None:
        return ds
    identities = tfds_identities(builder, source)
    mask = tf.constant(splits.in_role(splits.positions(identities), carve, role))
    shards, offsets, position = [], [], 0  # tfds_identities' order: shard by shard, index by index
    for fi in builder.info.splits[source].file_instructions:
        shards.append(os.path.basename(os.fspath(fi.filename)))
        offsets.append(position - fi.skip)
        position += fi.take
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(shards), tf.constant(offsets, tf.int64)), default_value=-1)

    def keep(example):
        parts = tf.strings.split(example["tfds_id"], "__", maxsplit=1)  # shard file name, index in it
        return tf.gather(mask, table.lookup(parts[0]) + tf.strings.to_number(parts[1], tf.int64))

    return ds.filter(keep)


def tfds_identities(builder, split: str) -> list:
    """The tfds ids of a split's examples, as tfds.ReadConfig(add_tfds_id=True) gives them, from its metadata
    alone (shard file names and lengths): counting a carved split reads no example."""
    return [f"{os.path.basename(os.fspath(fi.filename))}__{i}"
            for fi in builder.info.splits[split].file_instructions for i in range(fi.skip, fi.skip + fi.take)]


def _read_image_file(path, label):
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False), label


def _in_memory(examples: tf.data.Dataset, info: DatasetInfo, role: str, expected: int) -> Split:
    """Decodes a small-image split once into uint8 [n, S, S, 3] (CIFAR-10 train: 150 MB) and int32 [n]."""
    size = info.image_size

    def to_rgb_square(image, label):
        if image.shape[-1] == 1:  # e.g. a grayscale tfds dataset; folder images are decoded as RGB already
            image = tf.image.grayscale_to_rgb(image)
        # Unknown or other sizes (only some folders) are resized.
        return preprocessing.fit_small(image[:, :, :3], size), tf.cast(label, tf.int32)

    batches = examples.map(to_rgb_square, num_parallel_calls=tf.data.AUTOTUNE).batch(4096)
    arrays = list(batches.as_numpy_iterator())
    images = np.concatenate([a[0] for a in arrays]) if arrays else np.zeros([0, size, size, 3], np.uint8)
    labels = np.concatenate([a[1] for a in arrays]) if arrays else np.zeros([0], np.int32)
    _expect_size(info, role, len(labels), expected)
    images, labels = tf.constant(images), tf.constant(labels)
    return Split(len(labels), tf.data.Dataset.from_tensor_slices((images, labels)),
                 lambda i: (tf.gather(images, i), tf.gather(labels, i)))


def _expect_size(info: DatasetInfo, role: str, size: int, expected: int) -> None:
    if size != expected:
        raise DataError(f"{info.name}'s {role} split has {size} examples but its DatasetInfo says {expected}; "
                        "call get_info again after changing the data")


def _builder(name: str, data_dir: Optional[str]):
    # Checked against the registered builders first: for an unknown name tfds searches community datasets on
    # GCS, which on a machine without network can take as long as name resolution does to fail.
    registered = tfds.list_builders(with_community_datasets=False)
    if name.split("/")[0].split(":")[0] not in registered:
        close = difflib.get_close_matches(name, registered, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise DataError(f"unknown dataset '{name}'{hint}; known: {', '.join(KNOWN_DATASETS)}")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except ValueError as e:  # e.g. an unknown builder config: 'imagenette/1px'
        base = name.split("/")[0].split(":")[0]
        configs = [c.name for c in tfds.builder_cls(base).BUILDER_CONFIGS or []]
        reason = f"use one of {base}/{{{','.join(configs)}}}" if configs else str(e).splitlines()[0]
        raise DataError(f"cannot open tfds dataset '{name}': {reason}") from None
    features = builder.info.features
    if not (isinstance(features, tfds.features.FeaturesDict) and "image" in features and "label" in features
            and isinstance(features["image"], tfds.features.Image)
            and isinstance(features["label"], tfds.features.ClassLabel)):
        raise DataError(f"tfds dataset '{name}' has no 'image' and 'label' (class label) features; "
                        f"use an image-classification dataset: {', '.join(KNOWN_DATASETS)}")
    return builder


def _download_or_explain(builder, name: str, data_dir: Optional[str]) -> None:
    """Lets tfds download and prepare the dataset if its download host answers; otherwise says how to prepare it
    offline. The reachability check comes first because tfds itself retries for minutes on a dead network."""
    from data import prepare  # here, not at the top: `python -m data.prepare` must be the first to import it
    where = _where(data_dir)
    if builder.MANUAL_DOWNLOAD_INSTRUCTIONS:  # imagenet2012: only ever prepared from archives on disk
        raise DataError(f"{name} is not prepared {where}; {prepare.how_to_prepare(name, data_dir)}")
    host = _download_host(builder)
    if not _reachable(host):
        hint = (prepare.how_to_prepare(name, data_dir) if name in prepare.ARCHIVES else
                f"prepare it where the network works (tfds.builder('{name}').download_and_prepare()) and copy "
                "the data dir here")
        raise DataError(f"{name} is not prepared {where} and {host} is unreachable; {hint}")
    logging.info("downloading and preparing %s %s", name, where)
    builder.download_and_prepare()


def _where(data_dir: Optional[str]) -> str:
    return f"in {data_dir}" if data_dir else "in the tfds data dir (TFDS_DATA_DIR or ~/tensorflow_datasets)"


def _download_host(builder) -> str:
    urls = list(builder.url_infos or {})
    return urllib.parse.urlparse(urls[0]).hostname if urls else "storage.googleapis.com"


def _reachable(host: str, port: int = 443, timeout: float = REACHABILITY_TIMEOUT_S) -> bool:
    """True if a TCP connection to host opens within `timeout` seconds. Runs in a daemon thread because name
    resolution ignores socket timeouts and can hang far longer on a machine without network."""
    result = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result)


def _tfds_info(name: str, builder, image_size: Optional[int], validation_split: Optional[float]) -> DatasetInfo:
    available = builder.info.splits
    if "train" not in available:
        raise DataError(f"tfds dataset '{name}' has no 'train' split (it has: {', '.join(available) or 'none'})")
    eval_split = next((s for s in ("test", "validation") if s in available), None)
    if eval_split is None:
        raise DataError(f"tfds dataset '{name}' has neither a 'test' nor a 'validation' split "
                        f"(it has: {', '.join(available)})")
    height, width, _ = builder.info.features["image"].shape
    small = height is not None and width is not None and max(height, width) <= SMALL_IMAGE_MAX_SIDE
    if small and image_size and image_size != max(height, width):
        logging.warning("%s has %dx%d images; ignoring image_size=%d", name, height, width, image_size)
    mean, std = NORMALIZATION.get(builder.name, DEFAULT_NORMALIZATION)
    label = builder.info.features["label"]
    num_train = available["train"].num_examples
    own = "validation" if eval_split == "test" and "validation" in available else ""
    holdout = _validation(name, own, validation_split, builder, num_train)
    return DatasetInfo(
        name=name, num_classes=label.num_classes,
        image_size=max(height, width) if small else image_size or DEFAULT_LARGE_IMAGE_SIZE,
        small_images=small, num_train=num_train - (holdout["num_validation"] if holdout.get("validation_fraction") else 0),
        num_eval=available[eval_split].num_examples, train_split="train", eval_split=eval_split,
        class_names=tuple(label.names), mean=mean, std=std, **holdout,
        **resized_fields(shrink.read_marker(builder.data_dir)))


def _validation(name, own, requested, builder, num_train):
    """The DatasetInfo fields of the validation split: the dataset's own split `own` (a name, or ''), a fraction
    of 'train' carved by the hash of each example's tfds id, or none (requested 0)."""
    if own and requested != 0:
        if requested is not None:
            logging.warning("%s has its own validation split '%s'; --validation_split=%g is not used", name, own,
                            requested)
        return {"validation_split": own, "num_validation": builder.info.splits[own].num_examples}
    fraction = splits.default_validation(name, num_train) if requested is None else requested
    if fraction == 0:
        return {}
    carve = splits.Carve(validation=fraction)
    points = splits.positions(tfds_identities(builder, "train"))
    count = int(np.count_nonzero(splits.in_role(points, carve, "validation")))
    if count == 0:
        raise DataError(f"--validation_split={fraction:g} of {name}'s {num_train} training examples holds none of "
                        "them; give a larger fraction, or 0 for no validation split")
    return {"validation_split": "train", "num_validation": count, "validation_fraction": fraction}
