"""Offline preparation: a tfds dataset from its official archives on disk, or a pre-resized copy of a dataset.

    python -m data.prepare cifar10 --archive=/path/to/cifar-10-binary.tar.gz --data_dir=DIR
    python -m data.prepare imagenet2012 --archive=/path/to/dir_with_both_ILSVRC2012_tars --data_dir=DIR
    python -m data.prepare imagenet2012 --archive=... --data_dir=DIR --max_side=320  # train images pre-resized
    python -m data.prepare folder:/path/to/images --max_side=320 [--output=DIR]     # data/prepare/shrink.py
"""
import sys

from absl import app, flags
import tensorflow_datasets as tfds

from console import cuda_noise, logs

from data.info import DataError
from data.prepare import shrink
from data.prepare.archives import ARCHIVES, prepare


def main(argv):
    cuda_noise.import_tensorflow()  # the devices are probed: the CUDA-line filter ends
    if not sys.stderr.isatty():
        # tfds's bars redraw with carriage returns and count an archive on disk in "MiB/s" of bytes: in a log
        # (docker logs, a pipe) they are noise. absl's lines stay: each split's examples as it is written.
        tfds.disable_progress_bar()
    if len(argv) != 2:
        raise app.UsageError("usage: python -m data.prepare NAME --archive=PATH [--archive=PATH] [--data_dir=DIR]"
                             f" [--allow_unverified] [--max_side=N]; NAME is one of {', '.join(ARCHIVES)}; or "
                             "python -m data.prepare folder:/path --max_side=N [--output=DIR]")
    f = flags.FLAGS
    try:
        if argv[1].startswith("folder:"):
            path = _prepare_folder(argv[1][len("folder:"):], f)
            print(f"prepared {path}: train on it with --dataset=folder:{path}", flush=True)
            return
        for name, given in (("output", f.output), ("resize_eval", f.resize_eval)):
            if given:
                raise DataError(f"--{name} is for folder:/path datasets; a tfds dataset is written into --data_dir "
                                "and keeps its validation split at full size")
        path = prepare(argv[1], f.archive, f.data_dir, allow_unverified=f.allow_unverified, max_side=f.max_side,
                       quality=f.quality)
    except DataError as e:
        sys.exit(f"error: {e}")
    print(f"prepared {argv[1]} in {path}")


def _prepare_folder(root: str, f) -> str:
    if f.max_side is None:
        raise DataError(f"a folder dataset needs no preparation (train on it with --dataset=folder:{root}); "
                        "--max_side=N writes a copy whose training images are at most N px")
    if f.archive or f.allow_unverified:
        raise DataError("--archive and --allow_unverified are for tfds datasets; a folder is read where it is")
    return shrink.shrink_folder(root, f.max_side, f.output, quality=f.quality, resize_eval=f.resize_eval)


if __name__ == "__main__":
    flags.DEFINE_multi_string("archive", None, "official archive file, or a directory holding them; repeatable")
    flags.DEFINE_string("data_dir", None, "tfds data dir to build into (default: TFDS_DATA_DIR or "
                                          "~/tensorflow_datasets)")
    flags.DEFINE_bool("allow_unverified", False, "accept archives whose checksum is not the official one")
    flags.DEFINE_integer("max_side", None, "re-encode the train split's images with their longest side at most this "
                                           "many pixels (imagenet2012, folder:/path); the eval splits stay full size")
    flags.DEFINE_integer("quality", shrink.DEFAULT_QUALITY, "JPEG quality of the images --max_side re-encodes")
    flags.DEFINE_string("output", None, "folder:/path with --max_side: where to write the copy (default: "
                                        "<path>_max<N> beside it)")
    flags.DEFINE_bool("resize_eval", False, "folder:/path with --max_side: shrink the eval splits too (accuracy on "
                                            "them is then accuracy on resized images)")
    logs.run(main)
