"""The pipelines `python -m data.benchmark` times on a large-image dataset's training files, side by side:

- ours, whole (make_train_dataset), and cut after each of its stages (read; decode of the crop window; resize;
  flip), so that the differences say where the time goes;
- the reference: the tf.data ImageNet pipeline as the TF Model Garden writes it (official/vision/dataloaders/
  classification_input.py: decode_and_crop_jpeg of a sample_distorted_bounding_box window, flip, bilinear resize,
  mean/std normalization, map with AUTOTUNE, batch, prefetch);
- decode alone: tf.io.decode_jpeg of every whole file (libjpeg-turbo), the physical limit of a pipeline that
  decodes whole images.

Each is a function (records, image_size, batch_size) -> an infinite tf.data.Dataset; `time_images` counts images.
"""
import os
import time

import tensorflow as tf

from data import preprocessing

MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)  # the Model Garden's (ImageNet's) normalization
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def _seeded(records):
    """(example seed, encoded, label) forever: each example gets its own stateless seed, as ours do."""
    return records.repeat().enumerate().map(
        lambda i, record: (tf.stack([tf.constant(0, tf.int64), i]), *record))


def _mapped(records, fn):
    return _seeded(records).map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def read_only(records, image_size, batch_size):
    return _mapped(records, lambda seed, encoded, label: tf.strings.length(encoded))


def decode_crop(records, image_size, batch_size):
    return _mapped(records, lambda seed, encoded, label: tf.shape(
        preprocessing.decode_random_crop(encoded, _crop_seed(seed))))


def resize(records, image_size, batch_size):
    def transform(seed, encoded, label):
        crop = preprocessing.decode_random_crop(encoded, _crop_seed(seed))
        return tf.cast(tf.image.resize(crop, [image_size, image_size]) + 0.5, tf.uint8)
    return _mapped(records, transform)


def flip(records, image_size, batch_size):
    return _mapped(records, lambda seed, encoded, label: (
        preprocessing.random_resized_crop_flip(encoded, seed, image_size), label))


def decode_only(records, image_size, batch_size):
    return records.repeat().map(lambda encoded, label: tf.shape(tf.io.decode_jpeg(encoded, channels=3)),
                                num_parallel_calls=tf.data.AUTOTUNE)


def reference(records, image_size, batch_size):
    """The Model Garden's training pipeline for classification, on the same records."""
    def parse(encoded, label):
        shape = tf.image.extract_jpeg_shape(encoded)
        begin, size, _ = tf.image.sample_distorted_bounding_box(
            shape, tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]), min_object_covered=0.1,
            aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0), max_attempts=10,
            use_image_if_no_bounding_boxes=True)
        offset_y, offset_x, _ = tf.unstack(begin)
        height, width, _ = tf.unstack(size)
        image = tf.image.decode_and_crop_jpeg(encoded, tf.stack([offset_y, offset_x, height, width]), channels=3)
        image = tf.image.random_flip_left_right(image)
        image = tf.image.resize(image, [image_size, image_size], method="bilinear")
        image = (image - tf.constant(MEAN_RGB)) / tf.constant(STDDEV_RGB)
        return tf.ensure_shape(image, [image_size, image_size, 3]), label
    ds = records.repeat().map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# Ours, cut after each stage, in order: the difference between consecutive rows is that stage's cost.
OUR_STAGES = (("read", read_only), ("decode crop window", decode_crop), ("resize, round to uint8", resize),
              ("flip", flip))


def _crop_seed(seed):
    return tf.random.experimental.stateless_split(seed, 2)[0]


def time_images(dataset: tf.data.Dataset, images: int, per_element: int = 1, warmup: int = 64) -> float:
    """images/s of `dataset` over at least `images` images, after `warmup` images that let AUTOTUNE settle."""
    iterator = iter(dataset)
    for _ in range(max(1, warmup // per_element)):
        next(iterator)
    steps = max(1, images // per_element)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return steps * per_element / (time.perf_counter() - start)


def cores() -> int:
    """The cores this process may run on (taskset / a container's cpuset), which tf.data's pools size to."""
    return len(os.sched_getaffinity(0))
