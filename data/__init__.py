"""Input pipelines: datasets by name (tfds or an image folder), augmentation, and train/eval tf.data pipelines.

    info = get_info("cifar10", data_dir)
    train = make_train_dataset(info, data_dir=data_dir, global_batch_size=128, seed=0, start_step=step)
"""
from data.augment import Augment
from data.datasets import get_info
from data.describe import describe_splits
from data.info import DataError, DatasetInfo
from data.pipeline import make_eval_dataset, make_pixel_dataset, make_train_dataset

__all__ = ["Augment", "DataError", "DatasetInfo", "describe_splits", "get_info", "make_eval_dataset", "make_pixel_dataset",
           "make_train_dataset"]
