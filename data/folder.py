"""Image-folder datasets, indexed once and cached as JSON. Layouts:

    <class>/*                            flat: test, validation and train carved by hash (data/splits.py)
    train/<class>/* test/<class>/*       validation carved from train/ by hash
    train/<class>/* test/ val/           val/ is the validation split
    train/<class>/* val/<class>/*        val/ is the test split (as ImageNet's validation), validation carved

Indexing decodes every image once: that finds unreadable files up front (skipped, or a DataError with strict)
and gives the training split's per-channel mean/std. The index is cached beside the data, or under data_dir
(else ~/.cache) when the folder is read-only, and rebuilt when any file's name, size or mtime changes.
"""
import concurrent.futures
import dataclasses
import hashlib
import json
import os
from typing import Optional

from absl import logging
import numpy as np
import tensorflow as tf

from data import splits
from data.info import (DEFAULT_LARGE_IMAGE_SIZE, RESIZED_FORMAT, RESIZED_MARKER, SMALL_IMAGE_MAX_SIDE, DataError,
                       DatasetInfo, resized_fields)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
CACHE_NAME = "dataset_cache.json"
CACHE_VERSION = 2
EVAL_SPLITS = ("test", "val")
FLAT = "all"  # the source split of a flat folder: every image, before the hash deals them out
# The training pool's pixel sums are kept per hundredth of [0, 1), so that the mean / std of the training split
# can be had for any carve without decoding again (exact for fractions in whole percent).
STAT_BUCKETS = 100


def get_info(root: str, data_dir: Optional[str], image_size: Optional[int], *, strict: bool,
             validation_split: Optional[float] = 0.0, test_split: Optional[float] = None) -> DatasetInfo:
    root = os.path.abspath(os.path.expanduser(root))
    index = _index(root, data_dir)
    bad = index["bad_files"]
    if bad and strict:
        raise DataError(f"cannot decode image file {os.path.join(root, bad[0])}; remove or fix it, or run "
                        "without --strict to skip unreadable files")
    if bad:
        logging.warning("skipped %d unreadable image file(s) in %s (first: %s); --strict makes this an error",
                        len(bad), root, bad[0])
    small = index["max_side"] <= SMALL_IMAGE_MAX_SIDE
    if small and image_size and image_size != index["max_side"]:
        logging.warning("%s has images of at most %d px; ignoring image_size=%d", root, index["max_side"],
                        image_size)
    class_names, layout = index["class_names"], index["layout"]
    if len(class_names) < 2:
        raise DataError(f"folder dataset {root} has {len(class_names)} class folder(s) "
                        f"({', '.join(class_names) or 'none'}); a classifier needs at least 2")
    fields = _carve(root, layout, len(index["files"][layout["train"]]), validation_split, test_split)
    resized = _read_json(os.path.join(root, RESIZED_MARKER))
    resized = resized if isinstance(resized, dict) and resized.get("format") == RESIZED_FORMAT else None
    _check_full_size(root, resized, fields.get("test_fraction", 0.0))
    mean, std = _train_statistics(index["buckets"], splits.Carve(fields.get("validation_fraction", 0.0),
                                                                   fields.get("test_fraction", 0.0)))
    info = DatasetInfo(
        name=f"folder:{root}", num_classes=len(class_names),
        image_size=index["max_side"] if small else image_size or DEFAULT_LARGE_IMAGE_SIZE,
        small_images=small, num_train=0, num_eval=0, train_split=layout["train"], eval_split=layout["test"],
        class_names=tuple(class_names), mean=mean, std=std, **fields, **resized_fields(resized))
    counts = split_counts(index, info)
    _check_counts(root, class_names, counts, fields)
    return dataclasses.replace(info, num_train=sum(counts["train"]), num_eval=sum(counts["test"]),
                               num_validation=sum(counts.get("validation", [])))


def read_split(root: str, source: str, data_dir: Optional[str], carve=None, role: str = "train") -> tuple:
    """Returns (absolute paths, int labels) of the readable images of `source` that belong to `role` under
    `carve` (None: all of them), in a fixed order."""
    files = _index(root, data_dir)["files"][source]
    if carve is not None:
        keep = splits.in_role(splits.positions([rel for rel, _ in files]), carve, role)
        files = [f for f, k in zip(files, keep) if k]
    return [os.path.join(root, rel) for rel, _ in files], [label for _, label in files]


def split_counts(index: dict, info: DatasetInfo) -> dict:
    """{role: [images per class]} for the roles the run has."""
    roles = ("train", "validation", "test") if info.has_validation else ("train", "test")
    counts = {}
    for role in roles:
        source, carve = splits.source(info, role)
        files = index["files"][source]
        labels = np.array([label for _, label in files], np.int64)
        if carve is not None:
            labels = labels[splits.in_role(splits.positions([rel for rel, _ in files]), carve, role)]
        counts[role] = np.bincount(labels, minlength=info.num_classes).tolist()
    return counts


def counts_of(info: DatasetInfo, data_dir: Optional[str]) -> dict:
    """split_counts of a folder dataset described by `info`."""
    return split_counts(_index(info.name[len("folder:"):], data_dir), info)


def _carve(root, layout, pool, validation_split, test_split) -> dict:
    """The DatasetInfo fields that say where validation and test come from, for this layout and the flags."""
    flat = layout["train"] == FLAT
    if test_split is not None and not flat:
        raise DataError(f"--test_split carves a test split out of a flat folder (<class>/*); {root} has its own "
                        f"{layout['test']}/: leave --test_split out")
    test = (splits.FLAT_TEST_FRACTION if test_split is None else test_split) if flat else 0.0
    if flat and test == 0:
        raise DataError(f"--test_split=0 leaves the flat folder {root} without a test split; give a fraction "
                        "(e.g. 0.1), or lay it out as train/<class>/* and test/<class>/*")
    fields = {"test_fraction": test} if test else {}
    if validation_split == 0:
        return fields
    if layout["val"]:
        if validation_split is not None:
            logging.warning("%s has its own val/ split; --validation_split=%g is not used", root, validation_split)
        return {**fields, "validation_split": layout["val"]}
    fraction = splits.default_validation("folder", pool) if validation_split is None else validation_split
    if fraction + test >= splits.MAX_HELD_OUT:
        raise DataError(f"--validation_split={fraction:g} and --test_split={test:g} hold out "
                        f"{fraction + test:.0%} of {root}; together they must stay below "
                        f"{splits.MAX_HELD_OUT:.0%}")
    return {**fields, "validation_split": layout["train"], "validation_fraction": fraction}


def _check_full_size(root, resized, test_fraction) -> None:
    """A pre-resized flat folder kept the images of its default test carve at full size (data/prepare/shrink.py): a larger
    --test_split would test on resized images too."""
    kept = (resized or {}).get("full_size_fraction")
    if kept is not None and test_fraction > kept + 1e-12:
        raise DataError(f"{root} is pre-resized with the first {kept:g} of its images (by hash) kept at full size "
                        f"for testing; --test_split={test_fraction:g} would test on resized ones: pass "
                        f"--test_split={kept:g} or less, or test on the original folder")


def _check_counts(root, class_names, counts, fields) -> None:
    """Every class needs images in every split: its accuracy is otherwise unmeasured, or it is never learned."""
    for role, per_class in counts.items():
        for name, count in zip(class_names, per_class):
            if count:
                continue
            total = sum(c[class_names.index(name)] for c in counts.values())
            how = (f"{fields.get('test_fraction', 0):.0%} test and {fields.get('validation_fraction', 0):.0%} "
                   "validation by hash" if fields.get("validation_fraction") or fields.get("test_fraction") else
                   "its own folders")
            raise DataError(f"class '{name}' of {root} has {total} image(s), none of them in the {role} split "
                            f"({how}); every class needs images in every split: add images to it (about "
                            f"{_images_needed(fields)} or more), remove the class"
                            f"{', or pass --validation_split=0 (no validation split)' if role == 'validation' else ''}")


def _images_needed(fields) -> int:
    held_out = [f for f in (fields.get("validation_fraction", 0), fields.get("test_fraction", 0)) if f]
    return int(np.ceil(3 / min(held_out))) if held_out else 3


def _train_statistics(buckets, carve) -> tuple:
    """Per-channel mean and std in [0, 255] units over the training split's images (the buckets inside it)."""
    low = carve.bounds("train")[0]
    sums = np.array(buckets, np.float64)[int(np.ceil(low * STAT_BUCKETS - 1e-9)):].sum(0)
    mean = sums[1] / np.maximum(sums[0], 1)
    std = np.sqrt(np.maximum(sums[2] / np.maximum(sums[0], 1) - mean ** 2, 0.0))
    return tuple(mean.tolist()), tuple(np.maximum(std, 1.0).tolist())


def _index(root: str, data_dir: Optional[str]) -> dict:
    class_names, layout, listing = _list_files(root)
    fingerprint = hashlib.sha256(json.dumps([class_names, listing]).encode()).hexdigest()
    beside, fallback = os.path.join(root, CACHE_NAME), _fallback_cache_path(root, data_dir)
    for path in (beside, fallback):
        cached = _read_json(path)
        if cached and cached.get("version") == CACHE_VERSION and cached.get("fingerprint") == fingerprint:
            return cached
    logging.info("indexing %s: decoding every image once to find unreadable files and the mean/std", root)
    index = dict(version=CACHE_VERSION, fingerprint=fingerprint, class_names=class_names, layout=layout,
                 **_scan(root, listing, layout["train"]))
    try:
        _write_json(beside, index)
    except OSError:
        _write_json(fallback, index)
        logging.warning("%s is read-only; cached its file index and mean/std in %s instead", root, fallback)
    return index


def _list_files(root: str) -> tuple:
    """Returns (class names, {'train', 'test', 'val': source split names}, {source: [[relative path, label, size,
    mtime_ns], ...]})."""
    expected = f"expected {root}/<class>/* or {root}/train/<class>/* and {root}/test/<class>/* (or val/)"
    if not os.path.isdir(root):
        raise DataError(f"folder dataset {root} does not exist; {expected}")
    present = sorted(os.listdir(root))
    has = {s: os.path.isdir(os.path.join(root, s)) for s in ("train",) + EVAL_SPLITS}
    if not has["train"] and (has["test"] or has["val"]):
        raise DataError(f"folder dataset {root} has {'test/' if has['test'] else 'val/'} but no train/ folder; "
                        f"{expected}")
    if has["train"] and not (has["test"] or has["val"]):
        raise DataError(f"folder dataset {root} has train/ but no test/ (or val/) folder (found: "
                        f"{', '.join(present)}); {expected}, or move the class folders out of train/ to have the "
                        "test split carved by hash")
    if not has["train"]:  # flat: the class folders are at the top
        class_names = sorted(d for d in present if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
        listing = {FLAT: _list_split(root, "", class_names)}
        if not listing[FLAT]:
            raise DataError(f"folder dataset {root} has no images in class folders; {expected} "
                            f"(found: {', '.join(present) or 'nothing'})")
        return class_names, {"train": FLAT, "test": FLAT, "val": ""}, listing
    test = "test" if has["test"] else "val"
    layout = {"train": "train", "test": test, "val": "val" if has["test"] and has["val"] else ""}
    class_names = sorted(d for d in os.listdir(os.path.join(root, "train"))
                         if os.path.isdir(os.path.join(root, "train", d)))
    listing = {split: _list_split(root, split, class_names) for split in ("train", test) + ((layout["val"],) if layout["val"] else ())}
    for split, files in listing.items():
        if not files:
            raise DataError(f"folder dataset {root}/{split} has no images in class folders; expected "
                            f"{split}/<class>/*{{{','.join(IMAGE_EXTENSIONS)}}} "
                            f"(classes found: {', '.join(class_names) or 'none'})")
    return class_names, layout, listing


def _list_split(root: str, split: str, class_names: list) -> list:
    split_dir = os.path.join(root, split) if split else root
    extra = sorted(set(d for d in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, d)))
                   - set(class_names))
    if extra:
        raise DataError(f"{split_dir} has class folders that train/ lacks: {', '.join(extra)}; "
                        f"train/ has: {', '.join(class_names)}")
    files = []
    for label, name in enumerate(class_names):
        for dirpath, dirnames, filenames in os.walk(os.path.join(split_dir, name)):
            dirnames.sort()  # os.walk order is the file system's; sorting makes the index reproducible
            for filename in sorted(filenames):
                if filename.lower().endswith(IMAGE_EXTENSIONS):
                    path = os.path.join(dirpath, filename)
                    try:
                        size, mtime = os.stat(path).st_size, os.stat(path).st_mtime_ns
                    except OSError:  # e.g. a broken symlink: listed, then counted as unreadable by _scan
                        size, mtime = -1, 0
                    files.append([os.path.relpath(path, root), label, size, mtime])
    return files



def _scan(root: str, listing: dict, pool: str) -> dict:
    """Decodes every listed image; returns readable files per split, unreadable ones, the training pool's pixel
    sums per hash bucket (STAT_BUCKETS rows of: pixel count, per-channel sum, sum of squares) and the longest
    image side."""
    files, bad = {}, []
    buckets, max_side = np.zeros([STAT_BUCKETS, 3, 3]), 0  # float64: no overflow
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool_:
        for split, entries in listing.items():
            stats = pool_.map(_image_stats, [os.path.join(root, rel) for rel, *_ in entries])
            points = splits.positions([rel for rel, *_ in entries]) if split == pool else None
            files[split] = []
            for i, ((rel, label, *_), stat) in enumerate(zip(entries, stats)):
                if stat is None:
                    bad.append(rel)
                    continue
                files[split].append([rel, label])
                max_side = max(max_side, stat[1])
                if points is not None:
                    buckets[min(int(points[i] * STAT_BUCKETS), STAT_BUCKETS - 1)] += stat[0]
    if not files[pool]:
        where = os.path.join(root, pool) if pool != FLAT else root
        raise DataError(f"no readable images in {where} ({len(bad)} unreadable, first: {bad[0]})")
    return dict(files=files, bad_files=bad, buckets=buckets.tolist(), max_side=max_side)


def _image_stats(path: str):
    """(rows of pixel count, per-channel sum, sum of squares; longest side) of one image, None if unreadable."""
    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False).numpy()
    except (tf.errors.OpError, OSError):
        return None
    pixels = image.reshape(-1, 3).astype(np.float64)
    count = np.full(3, float(len(pixels)))
    return np.stack([count, pixels.sum(0), (pixels ** 2).sum(0)]), max(image.shape[:2])


def _fallback_cache_path(root: str, data_dir: Optional[str]) -> str:
    base = data_dir or os.path.join(os.path.expanduser("~"), ".cache", "resnet_v2_data")
    name = hashlib.sha256(root.encode()).hexdigest()[:16]
    return os.path.join(base, "folder_index", f"{os.path.basename(root)}-{name}.json")


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_json(path: str, value: dict) -> None:
    """Writes atomically, so a crash or a concurrent reader never sees half a cache."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path)
