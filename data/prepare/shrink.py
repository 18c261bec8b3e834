"""Pre-resized data: training images re-encoded as JPEG with their longest side at most N px, so that each decode
touches fewer pixels (FFCV stores ImageNet this way). Eval splits stay at full size unless asked, so that accuracy
numbers keep meaning the same.

    python -m data.prepare folder:/data/imagenet --max_side=320              # writes /data/imagenet_max320
    python -m data.prepare imagenet2012 --archive=DIR --data_dir=D --max_side=320   # data/prepare/archives.py

An image is decoded with the trainer's own decoder (tf.io.decode_image: same pixels, EXIF orientation ignored as
the trainer ignores it), resized with an antialiased Lanczos-3 filter (tf.image.resize, aspect ratio kept, sides
rounded) and encoded at JPEG quality 90: FFCV's and the usual pre-resized ImageNet's choice, visually lossless at
these sizes. An image already no larger than N keeps its bytes. File names and the class layout are kept (a carved
split is chosen by the hash of each file's path), so a re-encoded image.png holds JPEG bytes: the trainer sniffs
the format. The result is written beside its final name and renamed into place, so it is never half there.
"""
import collections
import datetime
import json
import os
import shutil
import tempfile
import time
from typing import Callable, Iterable, Optional

import numpy as np
import tensorflow as tf

from data import folder, splits
from data.info import RESIZED_FORMAT, RESIZED_MARKER, DataError

DEFAULT_QUALITY = 90
MIN_MAX_SIDE = 32      # below, a 224-px crop of most images would be upsampled from almost nothing
RESIZE_METHOD = "lanczos3"
PROGRESS_EVERY_S = 10.0
CHUNK = 64  # images per element handed from Python to tf.data and back


def check(max_side: int, quality: int) -> None:
    if max_side < MIN_MAX_SIDE:
        raise DataError(f"--max_side={max_side} is too small: give the longest side in pixels, at least "
                        f"{MIN_MAX_SIDE} (e.g. 256, 320, 384 or 512; docs/datasets.md)")
    if not 1 <= quality <= 100:
        raise DataError(f"--quality={quality} is no JPEG quality: give 1..100 (default {DEFAULT_QUALITY})")


def shrink_fn(max_side: int, quality: int) -> Callable:
    """encoded image -> JPEG of it with the longest side max_side, or "" if it is no larger: a tf.data map
    function. A JPEG's size is read from its header, so a small one is never decoded."""
    def decode(encoded):
        return tf.ensure_shape(tf.io.decode_image(encoded, channels=3, expand_animations=False), [None, None, 3])

    def shrink(encoded):
        is_jpeg = tf.io.is_jpeg(encoded)
        shape = tf.cond(is_jpeg, lambda: tf.image.extract_jpeg_shape(encoded)[:2],
                        lambda: tf.shape(decode(encoded), out_type=tf.int32)[:2])

        def resized():
            scale = max_side / tf.cast(tf.reduce_max(shape), tf.float64)
            size = tf.maximum(tf.cast(tf.round(tf.cast(shape, tf.float64) * scale), tf.int32), 1)
            image = tf.image.resize(decode(encoded), size, method=RESIZE_METHOD, antialias=True)
            return tf.io.encode_jpeg(tf.saturate_cast(tf.round(image), tf.uint8), quality=quality)

        return tf.cond(tf.reduce_max(shape) > max_side, resized, lambda: tf.constant(b""))

    return shrink


def shrink_stream(items: Iterable, max_side: int, quality: int, name: Callable = str) -> Iterable:
    """(key, encoded bytes) -> (key, bytes to store, re-encoded?) in the same order; parallel (tf.data map with
    AUTOTUNE). An image TensorFlow can't read is a DataError naming it: name(key)."""
    pending, failed = collections.deque(), []  # (key, encoded) given to tf.data and not yet returned

    def generate():
        # Chunks, not single images: each element from_generator makes costs Python time under the GIL. With a
        # no-op map, 110-KB images, one core: ~4,500 images/s one by one, ~14,500 in chunks of 64 (256: ~12,000);
        # re-encoding runs at ~150 images/s per core, so one by one would cap a machine at ~30 cores.
        chunk = []
        try:
            for key, encoded in items:
                pending.append((key, encoded))
                chunk.append(encoded)
                if len(chunk) == CHUNK:
                    yield chunk
                    chunk = []
        except Exception as e:  # noqa: BLE001 - re-raised below, where it is not wrapped in a tf.errors one
            failed.append(e)
            return
        if chunk:
            yield chunk

    shrink = shrink_fn(max_side, quality)
    ds = tf.data.Dataset.from_generator(generate, output_signature=tf.TensorSpec([None], tf.string)).unbatch()
    ds = ds.map(shrink, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(CHUNK)
    iterator = iter(ds.prefetch(2))
    while True:
        try:
            outs = next(iterator).numpy()
        except StopIteration:
            break
        except tf.errors.OpError:
            if failed:
                raise failed[0]
            raise _unreadable(shrink, list(pending)[:CHUNK], name) from None
        for out in outs:
            key, encoded = pending.popleft()
            yield key, out or encoded, bool(out)
    if failed:
        raise failed[0]


def _unreadable(shrink: Callable, chunk: list, name: Callable) -> DataError:
    """The DataError for the first image of a chunk that failed that TensorFlow can't read (found by trying each)."""
    for key, encoded in chunk:
        try:
            shrink(tf.constant(encoded))
        except tf.errors.OpError as e:
            first = (e.message.strip().splitlines() or [type(e).__name__])[0]
            return DataError(f"cannot decode image {name(key)} ({first}); remove or fix it, then run again")
    return DataError(f"cannot decode one of the images from {name(chunk[0][0])} on; remove or fix it, then run again")


class Progress:
    """Lines every PROGRESS_EVERY_S seconds (images done, images/s, ETA), flushed so a pipe shows them live."""

    def __init__(self, what: str, total: Optional[int], out=print, every: float = PROGRESS_EVERY_S):
        self.what, self.total, self.out, self.every = what, total, out, every
        self.start = self.last = time.monotonic()
        self.resized = self.kept = self.bytes_before = self.bytes_after = 0

    def update(self, before: int, after: int, resized: bool) -> None:
        self.resized += resized
        self.kept += not resized
        self.bytes_before += before
        self.bytes_after += after
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            done, rate = self.resized + self.kept, (self.resized + self.kept) / max(now - self.start, 1e-9)
            of = f"/{self.total:,} ({done / self.total:.0%})" if self.total else ""
            eta = (f", ETA {datetime.timedelta(seconds=round((self.total - done) / rate))}"
                   if self.total and rate else "")
            self.out(f"{self.what}: {done:,}{of} images, {rate:.0f} images/s{eta}", flush=True)

    def summary(self) -> str:
        seconds = time.monotonic() - self.start
        return (f"{self.what}: {self.resized:,} images re-encoded, {self.kept:,} already small and kept as they "
                f"were; {_mb(self.bytes_before)} -> {_mb(self.bytes_after)} in {seconds:.0f} s "
                f"({(self.resized + self.kept) / max(seconds, 1e-9):.0f} images/s)")

    def counts(self) -> dict:
        return {"resized": self.resized, "kept": self.kept, "bytes_before": self.bytes_before,
                "bytes_after": self.bytes_after}


def marker(max_side: int, quality: int, source: str, progress: Progress, eval_max_side: Optional[int] = None,
           **extra) -> dict:
    return {"format": RESIZED_FORMAT, "version": 1, "max_side": max_side, "eval_max_side": eval_max_side,
            "quality": quality, "resize": f"tf.image.resize {RESIZE_METHOD}, antialiased, aspect ratio kept",
            "source": source, "train": progress.counts(), **extra,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def read_marker(directory) -> Optional[dict]:
    """The marker of a pre-resized dataset in `directory` (a folder's root, a tfds dataset's version directory;
    local or any tf.io.gfile path), None for data as published."""
    path = os.path.join(os.fspath(directory), RESIZED_MARKER)
    try:
        with tf.io.gfile.GFile(path) as f:
            found = json.load(f)
    except (tf.errors.NotFoundError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("format") == RESIZED_FORMAT else None


def write_marker(directory, record: dict) -> None:
    with tf.io.gfile.GFile(os.path.join(os.fspath(directory), RESIZED_MARKER), "w") as f:
        json.dump(record, f, indent=2)


def default_output(source: str, max_side: int) -> str:
    return f"{os.path.abspath(os.path.expanduser(source)).rstrip(os.sep)}_max{max_side}"


def shrink_folder(source: str, max_side: int, output: Optional[str] = None, *, quality: int = DEFAULT_QUALITY,
                  resize_eval: bool = False, out=print) -> str:
    """Writes a pre-resized copy of the folder dataset `source` (data/folder.py layouts) and returns its path.

    Args:
      source: the folder.
      max_side: the longest side of the training images, in pixels.
      output: where to write it (default: beside source, `<source>_max<N>`). An existing one made from the same
        source with the same settings is kept as it is.
      quality: JPEG quality of the re-encoded images.
      resize_eval: shrink the eval splits (test/, val/; a flat folder's carved test images) too.

    Raises:
      DataError: max_side or quality out of range, a bad layout, an output in the way, an unreadable image.
    """
    check(max_side, quality)
    source = os.path.abspath(os.path.expanduser(source))
    output = os.path.abspath(os.path.expanduser(output)) if output else default_output(source, max_side)
    if os.path.commonpath([source, output]) == source:
        raise DataError(f"--output={output} lies inside the dataset {source} (it would become part of it); pass "
                        "--output=DIR outside it")
    _, layout, listing = folder._list_files(source)  # the same files, classes and layout checks as training
    settings = {"max_side": max_side, "eval_max_side": max_side if resize_eval else None, "quality": quality,
                "source": source}
    if os.path.lexists(output):
        return _existing(output, settings)
    full_size = _full_size(layout, listing, resize_eval)
    todo = [rel for entries in listing.values() for rel, *_ in entries if rel not in full_size]
    parent = os.path.dirname(output)
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.partial-", dir=parent)
    except OSError as e:
        raise DataError(f"cannot write {output}: {e.strerror or e}; pass --output=DIR somewhere writable") from None
    try:
        out(f"{source} -> {output}: {len(todo):,} images to at most {max_side} px (JPEG quality {quality}), "
            f"{len(full_size):,} eval images at full size", flush=True)
        progress = _write_copy(source, staging, todo, full_size, max_side, quality, out)
        record = marker(max_side, quality, source, progress, settings["eval_max_side"],
                        full_size_images=len(full_size), layout=layout,
                        **({"full_size_fraction": splits.FLAT_TEST_FRACTION}
                           if layout["train"] == folder.FLAT and not resize_eval else {}))
        write_marker(staging, record)
        os.rename(staging, output)
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise DataError(f"cannot write {output}: {e.strerror or e} ({getattr(e, 'filename', '')}); free some space "
                        "or pass --output=DIR elsewhere") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    out(progress.summary() + f"; {len(full_size):,} eval images linked (or copied) at full size", flush=True)
    return output


def _write_copy(source, staging, todo, full_size, max_side, quality, out) -> Progress:
    """Writes the images of `todo` into staging, re-encoded or linked, and links those of `full_size`."""
    progress = Progress("resized", len(todo), out)
    items = ((rel, _read(os.path.join(source, rel))) for rel in todo)
    for rel, encoded, resized in shrink_stream(items, max_side, quality):
        target = os.path.join(staging, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if resized:
            with open(target, "wb") as f:
                f.write(encoded)
        else:
            _link_or_copy(os.path.join(source, rel), target)
        progress.update(os.path.getsize(os.path.join(source, rel)), len(encoded), resized)
    for rel in sorted(full_size):
        _link_or_copy(os.path.join(source, rel), os.path.join(staging, rel))
    return progress


def _full_size(layout: dict, listing: dict, resize_eval: bool) -> set:
    """The relative paths kept at full size: the eval folders, or in a flat folder the images its default test
    carve takes (the first FLAT_TEST_FRACTION of the hash points; get_info refuses a larger --test_split)."""
    if resize_eval:
        return set()
    if layout["train"] == folder.FLAT:
        rels = [rel for rel, *_ in listing[folder.FLAT]]
        test = splits.in_role(splits.positions(rels), splits.Carve(test=splits.FLAT_TEST_FRACTION), "test")
        return set(np.array(rels, dtype=object)[test].tolist()) if rels else set()
    return {rel for split, entries in listing.items() if split != layout["train"] for rel, *_ in entries}


def _existing(output: str, settings: dict) -> str:
    found = read_marker(output) if os.path.isdir(output) else None
    if found:
        theirs = {k: found.get(k) for k in settings}
        if theirs == settings:
            print(f"{output} is already {settings['source']} at max_side={settings['max_side']} (delete it to "
                  "write it again)", flush=True)
            return output
        what = ", ".join(f"{k}={theirs[k]}" for k in settings if theirs[k] != settings[k])
        raise DataError(f"{output} is a pre-resized dataset with other settings ({what}); delete it, or pass "
                        "--output=DIR for a new one")
    raise DataError(f"{output} exists and is not a pre-resized dataset written by data.prepare; pass --output=DIR "
                    "for a new directory (nothing was written)")


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}; fix or remove it, then run again") from None


def _link_or_copy(source: str, target: str) -> None:
    """A hard link (no space, the same bytes), or a copy where the file system can't link."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"
