"""Input pipelines: datasets by name (tfds or an image folder), augmentation, and train/eval tf.data pipelines.

    info = get_info("cifar10", data_dir)
    train = make_train_dataset(info, data_dir=data_dir, global_batch_size=128, seed=0, start_step=step)
"""
from console import cuda_noise

cuda_noise.start_if_module("data.prepare", "data.benchmark", "data.benchmark.photos",  # before this package
                           "data.service")  # imports TensorFlow
from data.augment import Augment  # noqa: E402
from data.datasets import get_info  # noqa: E402
from data.describe import describe_splits  # noqa: E402
from data.info import DataError, DatasetInfo  # noqa: E402
from data.pipeline import make_eval_dataset, make_pixel_dataset, make_train_dataset  # noqa: E402

__all__ = ["Augment", "DataError", "DatasetInfo", "describe_splits", "get_info", "make_eval_dataset", "make_pixel_dataset",
           "make_train_dataset"]
