"""A trained run as a model: its network with a checkpoint's weights, the dataset it learned (class names,
normalization, input size) and the eval transform that turns encoded images of any size into its inputs."""
import dataclasses

import keras
import tensorflow as tf

import data
from data import preprocessing
from training.compute import network
from training.rundir import checkpoints, run_dir


class LoadError(Exception):
    """A run directory or checkpoint that can't be loaded, with a one-line reason."""


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    net: keras.Model
    info: data.DatasetInfo  # class names, mean / std, image size, small_images
    checkpoint: str
    step: int
    averaged: bool = False  # the weights are the run's EMA
    data_dir: str | None = None  # where the run read its dataset (config.json)
    reason: str = ""  # which checkpoint and why (checkpoints.choose)


def load(model_dir, checkpoint=None, raw_weights=False, dtype="float32", portable=False):
    """The run in model_dir with the weights of `checkpoint` (a prefix, or 'best'; default: the best on the
    validation split, else the latest): the weights training chose for it (its weight EMA when the run has one and
    chose nothing), unless raw_weights; its network computing in `dtype`
    (a resolved one; the weights stay float32 and the logits are float32) with this machine's kernels, or
    TensorFlow's own where portable (network.create's). Needs no dataset when the run recorded its DatasetInfo in
    config.json."""
    try:
        config = run_dir.require_config(model_dir)
        info = run_dir.read_dataset_info(model_dir)
    except ValueError as e:
        raise LoadError(str(e)) from None
    if not config["include_top"]:
        raise LoadError(run_dir.NO_CLASSIFIER.format(model_dir=model_dir))
    if info is None:  # a run from before config.json recorded its dataset: ask the dataset itself
        info = data.get_info(config["dataset"], config["data_dir"], config["image_size"])
    net, _ = network.create(config, info.num_classes, dtype, portable)
    try:
        choice = checkpoints.choose(model_dir, checkpoint)
        step, averaged = checkpoints.restore_weights(choice.path, net, raw_weights or choice.weights == "raw")
    except checkpoints.CheckpointError as e:
        raise LoadError(str(e)) from None
    return TrainedModel(net, info, choice.path, step, averaged, config["data_dir"], choice.reason)


def preprocess_image(image, info, margin=False):
    """A decoded uint8 [h, w, 3] image of any size -> the model's normalized input, as the eval pipeline makes
    (margin: the larger square test-time crops come from)."""
    return preprocessing.eval_image(image, info.image_size, info.small_images, info.mean, info.std, margin)


def preprocess_encoded(encoded, info, margin=False):
    """JPEG/PNG/BMP/GIF bytes -> the model's normalized input."""
    return preprocess_image(preprocessing.decode(encoded), info, margin)


def input_spec(info, margin=False):
    size = preprocessing.tta_size(info.image_size) if margin and not info.small_images else info.image_size
    return tf.TensorSpec([size, size, 3], tf.float32)
