"""Image-folder datasets: train/<class>/* and test/<class>/* (or val/), indexed once and cached as JSON.

Indexing decodes every image once: that finds unreadable files up front (skipped, or a DataError with strict)
and gives the training split's per-channel mean/std. The index is cached beside the data, or under data_dir
(else ~/.cache) when the folder is read-only, and rebuilt when any file's name, size or mtime changes.
"""
import concurrent.futures
import hashlib
import json
import os
from typing import Optional

from absl import logging
import numpy as np
import tensorflow as tf

from data.info import DEFAULT_LARGE_IMAGE_SIZE, SMALL_IMAGE_MAX_SIDE, DataError, DatasetInfo

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
CACHE_NAME = "dataset_cache.json"
CACHE_VERSION = 1
EVAL_SPLITS = ("test", "val")


def get_info(root: str, data_dir: Optional[str], image_size: Optional[int], *, strict: bool) -> DatasetInfo:
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
    eval_split = index["eval_split"]
    return DatasetInfo(
        name=f"folder:{root}", num_classes=len(index["class_names"]),
        image_size=index["max_side"] if small else image_size or DEFAULT_LARGE_IMAGE_SIZE,
        small_images=small, num_train=len(index["files"]["train"]), num_eval=len(index["files"][eval_split]),
        train_split="train", eval_split=eval_split, class_names=tuple(index["class_names"]),
        mean=tuple(index["mean"]), std=tuple(index["std"]))


def read_split(root: str, split: str, data_dir: Optional[str]) -> tuple:
    """Returns (absolute paths, int labels) of the split's readable images, in a fixed order."""
    files = _index(root, data_dir)["files"][split]
    return [os.path.join(root, rel) for rel, _ in files], [label for _, label in files]


def _index(root: str, data_dir: Optional[str]) -> dict:
    class_names, eval_split, listing = _list_files(root)
    fingerprint = hashlib.sha256(json.dumps([class_names, listing]).encode()).hexdigest()
    beside, fallback = os.path.join(root, CACHE_NAME), _fallback_cache_path(root, data_dir)
    for path in (beside, fallback):
        cached = _read_json(path)
        if cached and cached.get("version") == CACHE_VERSION and cached.get("fingerprint") == fingerprint:
            return cached
    logging.info("indexing %s: decoding every image once to find unreadable files and the mean/std", root)
    index = dict(version=CACHE_VERSION, fingerprint=fingerprint, class_names=class_names,
                 eval_split=eval_split, **_scan(root, listing))
    try:
        _write_json(beside, index)
    except OSError:
        _write_json(fallback, index)
        logging.warning("%s is read-only; cached its file index and mean/std in %s instead", root, fallback)
    return index


def _list_files(root: str) -> tuple:
    """Returns (class names, eval split name, {split: [[relative path, label, size, mtime_ns], ...]})."""
    if not os.path.isdir(root):
        raise DataError(f"folder dataset {root} does not exist; expected {root}/train/<class>/* and "
                        f"{root}/test/<class>/* (or val/)")
    present = sorted(os.listdir(root))
    eval_split = next((s for s in EVAL_SPLITS if os.path.isdir(os.path.join(root, s))), None)
    if not os.path.isdir(os.path.join(root, "train")) or eval_split is None:
        missing = "train/" if not os.path.isdir(os.path.join(root, "train")) else "test/ (or val/)"
        raise DataError(f"folder dataset {root} has no {missing} folder; expected train/<class>/* and "
                        f"test/<class>/* (or val/); found: {', '.join(present) or 'nothing'}")
    class_names = sorted(d for d in os.listdir(os.path.join(root, "train"))
                         if os.path.isdir(os.path.join(root, "train", d)))
    listing = {split: _list_split(root, split, class_names) for split in ("train", eval_split)}
    for split, files in listing.items():
        if not files:
            raise DataError(f"folder dataset {root}/{split} has no images in class folders; expected "
                            f"{split}/<class>/*{{{','.join(IMAGE_EXTENSIONS)}}} "
                            f"(classes found: {', '.join(class_names) or 'none'})")
    return class_names, eval_split, listing


def _list_split(root: str, split: str, class_names: list) -> list:
    split_dir = os.path.join(root, split)
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


def _scan(root: str, listing: dict) -> dict:
    """Decodes every listed image; returns readable files per split, unreadable ones, the training split's
    per-channel mean/std in [0, 255] units and the longest image side."""
    files, bad = {}, []
    sums, max_side = np.zeros([3, 3]), 0  # rows: pixel count, sum, sum of squares (float64: no overflow)
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for split, entries in listing.items():
            stats = pool.map(_image_stats, [os.path.join(root, rel) for rel, *_ in entries])
            files[split] = []
            for (rel, label, *_), stat in zip(entries, stats):
                if stat is None:
                    bad.append(rel)
                    continue
                files[split].append([rel, label])
                max_side = max(max_side, stat[1])
                if split == "train":
                    sums += stat[0]
    if not files["train"]:
        raise DataError(f"no readable images in {root}/train ({len(bad)} unreadable, first: {bad[0]})")
    mean = sums[1] / sums[0]
    std = np.sqrt(np.maximum(sums[2] / sums[0] - mean ** 2, 0.0))
    return dict(files=files, bad_files=bad, mean=mean.tolist(), std=np.maximum(std, 1.0).tolist(),
                max_side=max_side)


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
