"""tfds datasets built offline from their official archives already on disk, never the network: checked against
tfds's registered size and sha256 (--allow_unverified accepts an archive in the same format whose checksum
differs: a subset, a cleaned copy), built as an ordinary tfds dataset that tfds.load(name, data_dir=DIR) reads.
With max_side, imagenet2012's train split is re-encoded as it is written (data/prepare/shrink.py) and its
validation split kept as published; a marker file records it."""
import os
import tempfile
import urllib.parse
from typing import Optional, Sequence

from absl import logging
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import checksums

from data import imagenet
from data.prepare import shrink
from data.info import DataError

# The official archive file names, as tfds expects them in its manual download dir.
ARCHIVES = {
    "cifar10": ("cifar-10-binary.tar.gz",),
    "cifar100": ("cifar-100-binary.tar.gz",),
    "imagenet2012": ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
}
RESIZABLE = {"imagenet2012": imagenet.NUM_TRAIN}  # the tfds datasets --max_side applies to: their train size


def how_to_prepare(name: str, data_dir: Optional[str]) -> str:
    """The command that prepares `name` offline, as advice for an error message."""
    archives = " ".join(f"--archive=PATH/{f}" for f in ARCHIVES.get(name, ("ARCHIVE",)))
    where = f" --data_dir={data_dir}" if data_dir else ""
    return (f"put {' and '.join(ARCHIVES.get(name, ('its archive',)))} on this machine and run "
            f"`python -m data.prepare {name} {archives}{where}`")


def prepare(name: str, archives: Sequence[str], data_dir: Optional[str] = None, *,
            allow_unverified: bool = False, max_side: Optional[int] = None,
            quality: int = shrink.DEFAULT_QUALITY) -> str:
    """Builds tfds dataset `name` in data_dir from archive files (or directories holding them); with max_side, its
    train images re-encoded with their longest side at most max_side px, at JPEG `quality`.

    Returns:
      The directory of the prepared dataset.

    Raises:
      DataError: unknown name, missing archive, an archive that is not the official one (unless
        allow_unverified), or an archive tfds cannot read; max_side for a dataset it does not apply to, or a
        data_dir that holds the dataset prepared otherwise.
    """
    if name not in ARCHIVES:
        raise DataError(f"cannot prepare '{name}' offline; known: {', '.join(ARCHIVES)}")
    if max_side is not None:
        shrink.check(max_side, quality)
        if name not in RESIZABLE:
            raise DataError(f"--max_side pre-resizes {', '.join(RESIZABLE)} and folder:/path datasets; {name}'s "
                            "images are small already: leave --max_side out")
    builder_cls = tfds.builder_cls(name)
    builder = builder_cls(data_dir=data_dir)
    if builder.is_prepared():
        _check_prepared(builder, name, max_side, quality)
        logging.info("%s is already prepared in %s (delete that directory to rebuild it)", name, builder.data_dir)
        return builder.data_dir
    paths = _match_archives(name, archives)
    official = _official_url_infos(builder_cls)
    unverified = {official[f][0]: info for f, path in paths.items()
                  if (info := _verify(path, official[f][1], allow_unverified)) is not None}
    if unverified:
        builder_cls = _accepting(builder_cls, unverified)
    if max_side is not None:
        # Whose size is known: the official archive's. A subset's progress shows no ETA.
        builder_cls = _resizing(builder_cls, max_side, quality, None if unverified else RESIZABLE[name],
                                source=paths[ARCHIVES[name][0]])
    return _build(builder_cls, name, data_dir, paths)


def _check_prepared(builder, name: str, max_side: Optional[int], quality: int) -> None:
    """Refuses a data_dir whose dataset was prepared with other --max_side settings than asked."""
    found = shrink.read_marker(builder.data_dir)
    theirs = (found["max_side"], found["quality"]) if found else (None, None)
    if theirs != ((max_side, quality) if max_side is not None else (None, None)):
        held = f"with --max_side={theirs[0]} --quality={theirs[1]}" if found else "at full size"
        raise DataError(f"{builder.data_dir} holds {name} prepared {held}; pass another --data_dir for this one "
                        "(a data_dir holds one version of a dataset)")


def _match_archives(name: str, archives: Sequence[str]) -> dict:
    """{official file name: path} for every archive `name` needs. A dataset made of one archive accepts any
    file name (e.g. a renamed subset); several archives are matched by their official names."""
    expected = ARCHIVES[name]
    files = []
    for archive in archives or []:
        if os.path.isdir(archive):
            files += [os.path.join(archive, f) for f in expected if os.path.isfile(os.path.join(archive, f))]
        elif os.path.isfile(archive):
            files.append(archive)
        else:
            raise DataError(f"archive {archive} does not exist")
    if len(expected) == 1 and len(files) == 1:
        return {expected[0]: os.path.abspath(files[0])}
    by_name = {os.path.basename(f): os.path.abspath(f) for f in files}
    missing = [f for f in expected if f not in by_name]
    if missing:
        raise DataError(f"{name} needs {' and '.join(expected)}; missing {', '.join(missing)}: pass "
                        "--archive once per file, or a directory holding them")
    return {f: by_name[f] for f in expected}


def _official_url_infos(builder_cls) -> dict:
    """{official file name: (url, registered UrlInfo)}."""
    return {info.filename or os.path.basename(urllib.parse.urlparse(url).path): (url, info)
            for url, info in builder_cls.url_infos.items()}


def _verify(path: str, expected, allow_unverified: bool):
    """None if `path` is the official archive; else, if allowed, its own UrlInfo (under the official file name,
    where tfds looks for it); else a DataError. Hashing runs at disk speed (~1 s per 200 MB)."""
    filename = expected.filename or os.path.basename(path)
    actual = None
    if os.path.getsize(path) == expected.size:
        logging.info("checking the sha256 of %s", path)
        actual = checksums.compute_url_info(path)
        if actual.checksum == expected.checksum:
            return None
    if not allow_unverified:
        raise DataError(f"{path} is not the official {filename} (its size or sha256 differs from tfds's "
                        "registered checksum); pass --allow_unverified to prepare from it anyway")
    actual = actual or checksums.compute_url_info(path)
    logging.warning("%s is not the official %s; preparing from it anyway (--allow_unverified): results on it "
                    "are not results on the official dataset", path, filename)
    return checksums.UrlInfo(size=actual.size, checksum=actual.checksum, filename=filename)


def _accepting(builder_cls, url_infos: dict):
    """The same builder, but expecting these checksums. Unregistered and with the same name and module, so the
    dataset it writes is the ordinary one and plain tfds.load reads it."""
    attributes = {"name": builder_cls.name, "__module__": builder_cls.__module__,
                  "url_infos": {**builder_cls.url_infos, **url_infos}}
    return type(builder_cls.__name__, (builder_cls,), attributes, skip_registration=True)


def _resizing(builder_cls, max_side: int, quality: int, total: Optional[int], source: str):
    """The same builder, but its train examples' images re-encoded (data/prepare/shrink.py) as they are generated, and a
    marker written into the dataset before tfds renames it into place. The validation and test splits are
    generated as published."""
    def _generate_examples(self, archive, validation_labels=None, labels_exist=True):
        examples = builder_cls._generate_examples(self, archive, validation_labels, labels_exist)
        if validation_labels or not labels_exist:
            yield from examples
            return
        progress = self._resized = shrink.Progress("resized train", total)

        def items():
            for key, record in examples:
                image = record["image"]
                encoded = image if isinstance(image, bytes) else image.read()  # a tar member: read it now
                yield (key, record, len(encoded)), encoded

        stream = shrink.shrink_stream(items(), max_side, quality, name=lambda k: f"{k[0]} of {source}")
        for (key, record, before), encoded, resized in stream:
            progress.update(before, len(encoded), resized)
            yield key, {**record, "image": encoded}
        print(progress.summary(), flush=True)

    def _download_and_prepare(self, dl_manager, download_config):
        builder_cls._download_and_prepare(self, dl_manager, download_config)
        progress = getattr(self, "_resized", None) or shrink.Progress("resized train", total)
        shrink.write_marker(self.data_dir, shrink.marker(max_side, quality, source, progress))

    attributes = {"name": builder_cls.name, "__module__": builder_cls.__module__,
                  "_generate_examples": _generate_examples, "_download_and_prepare": _download_and_prepare}
    return type(builder_cls.__name__, (builder_cls,), attributes, skip_registration=True)


def _build(builder_cls, name: str, data_dir: Optional[str], paths: dict) -> str:
    # tfds takes manually downloaded files from manual_dir under their official names; symlinks avoid copying
    # archives (ImageNet: 144 GB), and the temporary download dir takes CIFAR's extracted files (~180 MB).
    with tempfile.TemporaryDirectory(prefix="data_prepare_") as tmp:
        manual_dir = os.path.join(tmp, "manual")
        os.makedirs(manual_dir)
        for filename, path in paths.items():
            os.symlink(path, os.path.join(manual_dir, filename))
        builder = builder_cls(data_dir=data_dir)
        config = tfds.download.DownloadConfig(manual_dir=manual_dir)
        try:
            builder.download_and_prepare(download_dir=os.path.join(tmp, "downloads"), download_config=config)
        except (OSError, ValueError, tf.errors.OpError) as e:
            first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DataError(f"could not build {name} from {', '.join(paths.values())}: {first_line}") from None
    return builder.data_dir
