"""A damaged file of a prepared tfds dataset: which one, and the command that rebuilds it.

tf.data reports a truncated or corrupted TFRecord as "corrupted record at <offset>" without naming the file, so
after such an error the split's files are read once more, each record's CRC checked, up to the first bad one
(CIFAR-10: one 120 MB file, about a second; ImageNet train: up to 1024 files, 140 GB, at disk speed)."""
import os
from typing import Optional

import tensorflow as tf
import tensorflow_datasets as tfds

from data.info import DataError, DatasetInfo


def damaged(info: DatasetInfo, data_dir: Optional[str], error: Exception, splits=None) -> DataError:
    """The DataError for a DataLossError `error` met while reading `splits` (default: train, then eval)."""
    from data import prepare  # here, not at the top: `python -m data.prepare` must be the first to import it
    builder = tfds.builder(info.name, data_dir=data_dir)
    for split in splits or (info.train_split, info.eval_split):
        path = first_damaged_file(builder, split)
        if path:
            return DataError(f"{path} is damaged ({_reason(error)}); delete {builder.data_dir} and rebuild it: "
                             f"{prepare.how_to_prepare(info.name.split('/')[0], data_dir)}")
    return DataError(f"a file of {info.name} in {builder.data_dir} is damaged ({_reason(error)}); delete that "
                     f"directory and rebuild it: {prepare.how_to_prepare(info.name.split('/')[0], data_dir)}")


def first_damaged_file(builder, split: str) -> Optional[str]:
    """The first file of `split` that does not read back whole, or None."""
    for path in builder.info.splits[split].filepaths:
        path = os.fspath(path)
        try:  # counted inside tf.data: a Python loop over ImageNet's records would take longer than reading them
            tf.data.TFRecordDataset(path, buffer_size=2 ** 22).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1)
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError, tf.errors.NotFoundError):
            return path
    return None


def _reason(error: Exception) -> str:
    """"corrupted record at 4739196" out of TensorFlow's multi-line message."""
    message = getattr(error, "message", str(error))
    for line in message.splitlines():
        for word in ("corrupted record", "truncated record", "No such file"):
            if word in line:
                return line[line.index(word):].split(" [Op:")[0].split("'")[0].strip()
    return message.splitlines()[0][:200] if message else type(error).__name__
