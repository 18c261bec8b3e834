"""Training and eval input pipelines: load -> (in-memory) -> shuffle -> augment -> batch -> prefetch.

The training stream is a pure function of (seed, epoch): epoch e visits its examples in an order derived from
(seed, e), and example i of epoch e is augmented with a seed derived from (seed, e, i). Resuming at a step
therefore needs no iterator state, and skipping happens on indices before anything is decoded or augmented.
"""
import math
from typing import Optional

import tensorflow as tf

from data import augment as augmentations, preprocessing
from data.datasets import Split, load_split
from data.info import DataError, DatasetInfo

# Records held by the shuffle buffer of a streamed (large tfds) split; tfds already shuffled the records when it
# wrote them, this adds a different order per epoch. ImageNet JPEGs average ~110 kB, so ~1 GB.
STREAM_SHUFFLE_BUFFER = 10_000
_MAX_STEPS = 2 ** 62  # "forever", as an int64 range bound


def make_train_dataset(info: DatasetInfo, *, data_dir: Optional[str] = None, global_batch_size: int,
                       seed: int = 0, start_step: int = 0,
                       input_context: Optional[tf.distribute.InputContext] = None,
                       deterministic: bool = False,
                       augment: Optional[augmentations.Augment] = None, pixels: bool = False,
                       service: Optional[str] = None) -> tf.data.Dataset:
    """Infinite stream of (images float32 [b, S, S, 3] normalized, labels int32 [b]); with mixup or cutmix the
    labels are soft targets float32 [b, num_classes].

    Args:
      info: from get_info.
      data_dir: tfds data dir, as given to get_info.
      global_batch_size: examples per step over all replicas; b is this pipeline's per-replica share.
      seed: the stream is a pure function of seed (given deterministic=True).
      start_step: global step to start at; yields what start_step=0 yields after start_step steps.
      input_context: from distribute_datasets_from_function; each input pipeline takes a disjoint share of
        every global batch, and its replicas pull consecutive per-replica batches.
      deterministic: tf.data.Options.deterministic; False lets parallel map return elements out of order.
      augment: cutout, RandAugment, mixup / cutmix on top of the crop and flip (data/augment.py).
      pixels: the images before the normalization, which the caller then applies on its device
        (preprocessing.normalize(images, info.mean, info.std) gives exactly the normalized stream): uint8 when
        the crop and flip are all (a quarter of the bytes), else float32 in [0, 255].
      service: grpc://HOST:PORT of a tf.data service dispatcher (data/service.py): its workers run this pipeline,
        each batch one split of the source, in order, so every batch is bit-identical to one of the local
        stream's; they arrive in the order the workers finish them (docs/reliability.md).
    """
    augment = augment or augmentations.Augment()
    pipelines, pipeline_id, replica_batch = _layout(global_batch_size, input_context)
    steps_per_epoch = info.num_train // global_batch_size
    if steps_per_epoch == 0:
        raise DataError(f"global batch size {global_batch_size} is larger than the {info.num_train} training "
                        f"examples of {info.name}; use a smaller batch size")
    # Each epoch uses the first steps_per_epoch * global_batch_size positions of its order (the rest is dropped,
    # so epochs have clean step boundaries); pipeline p takes positions p, p + P, p + 2P, ... of that.
    epoch_share = steps_per_epoch * global_batch_size // pipelines
    skip = start_step * global_batch_size // pipelines
    split = load_split(info, "train", data_dir, shuffle_seed=seed)
    if service and split.lookup is None:
        raise DataError(f"a tf.data service can't serve {info.name}: its training split is streamed from tfds' "
                        "record files, which dynamic sharding would hand out one whole epoch per worker, epochs "
                        "overlapping; train it without the service, or from a folder of its images (folder:/path)")
    if split.lookup is not None:
        # Under a service each split of the source is one batch of positions, not one position: a dispatcher
        # round trip per batch, and a worker that keeps order batches exactly what the local stream does.
        positions = _addressable_order(split.size, steps_per_epoch * global_batch_size, pipelines, pipeline_id,
                                       skip, seed, replica_batch if service else 1)
        examples = positions.map(lambda epoch, index: (epoch, index, *split.lookup(index)),
                                 num_parallel_calls=tf.data.AUTOTUNE)
    else:
        examples = _streamed_order(split, epoch_share, pipelines, pipeline_id, skip, seed)
    ds = examples.map(_train_transform(info, seed, augment), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(replica_batch, drop_remainder=True)
    if augment.mixes:
        # Seeded by the batch's first example, itself seeded by (seed, epoch, index): a pure function of the step.
        # Mixing is linear, so mixing pixels and then normalizing is mixing normalized images.
        ds = ds.map(lambda images, labels, seeds: augmentations.mix(tf.cast(images, tf.float32), labels, seeds[0],
                                                                   info.num_classes, augment),
                    num_parallel_calls=tf.data.AUTOTUNE)
    if not pixels:
        ds = ds.map(lambda images, labels: (preprocessing.normalize(images, info.mean, info.std), labels),
                    num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.prefetch(tf.data.AUTOTUNE).with_options(_options(deterministic or bool(service)))
    if not service:
        return ds
    from data import service as service_lib  # here: `python -m data.service` must be the first to import it
    return service_lib.distribute(ds, service)


def make_eval_dataset(info: DatasetInfo, *, data_dir: Optional[str] = None, global_batch_size: int,
                      input_context: Optional[tf.distribute.InputContext] = None,
                      margin: bool = False, split: str = "test") -> tf.data.Dataset:
    """One ordered pass over `split` ('test' or 'validation'): (images, labels int32, weights float32 [b]), every
    batch exactly b examples. margin (large images): the central squares the crops of test-time augmentation
    come from (256 px for 224).

    The tail is padded with weight-0 examples so that each input pipeline yields the same number of batches, a
    multiple of its replicas: every replica gets a full batch in every one of ceil(examples / global_batch_size)
    steps, and the weights over all replicas sum to the split's examples.
    """
    pipelines, pipeline_id, replica_batch = _layout(global_batch_size, input_context)
    source = load_split(info, split, data_dir)
    steps = math.ceil(source.size / global_batch_size)
    size = info.image_size
    if margin and not info.small_images:
        size = preprocessing.tta_size(info.image_size)

    def transform(raw, label):
        if info.small_images:
            image = raw
        else:
            image = preprocessing.center_crop(preprocessing.decode(raw), size, 1.0 if margin else
                                              preprocessing.EVAL_CROP_FRACTION)
        return preprocessing.normalize(image, info.mean, info.std), label, tf.constant(1.0)

    real = source.records.shard(pipelines, pipeline_id).map(transform, num_parallel_calls=tf.data.AUTOTUNE)
    padding = tf.data.Dataset.from_tensors((tf.zeros([size, size, 3]), tf.constant(0), tf.constant(0.0)))
    ds = real.concatenate(padding.repeat()).take(steps * global_batch_size // pipelines)
    ds = ds.batch(replica_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options(deterministic=True))


def make_pixel_dataset(info: DatasetInfo, split: str, *, data_dir: Optional[str] = None,
                       limit: Optional[int] = None, spread: bool = False) -> tf.data.Dataset:
    """Up to `limit` examples of `split` ('train', 'validation' or 'test') as an exported model takes them, one at a time: (raw, pixels, label).
    raw is the stored image (uint8 [S, S, 3] for small images, encoded bytes otherwise), pixels its eval transform
    before the normalization (preprocessing.eval_pixels: float32 0-255, [S, S, 3]). spread: examples evenly
    spaced over the split (a calibration set then spans every class of a folder, which is sorted by class; a
    streamed tfds split takes the first files of a seeded file order instead), else the first ones in order."""
    source = load_split(info, split, data_dir, shuffle_seed=0 if spread else None)
    count = source.size if limit is None else min(limit, source.size)
    if spread and source.lookup is not None:
        indices = tf.cast(tf.linspace(0.0, float(source.size - 1), count), tf.int64)
        records = tf.data.Dataset.from_tensor_slices(indices).map(source.lookup)
    else:
        records = source.records.take(count)

    def transform(raw, label):
        image = raw if info.small_images else preprocessing.decode(raw)
        return raw, preprocessing.eval_pixels(image, info.image_size, info.small_images), label

    return records.map(transform, num_parallel_calls=tf.data.AUTOTUNE).with_options(_options(deterministic=True))


def _train_transform(info: DatasetInfo, seed: int, augment: augmentations.Augment):
    """(epoch, example index, raw, label) -> (augmented pixels, label[, its seed for mixing]), seeded by (seed,
    epoch, index). The pixels stay uint8 through the crop and flip; RandAugment and cutout make them float32."""
    def transform(epoch, index, raw, label):
        example_seed = tf.random.experimental.stateless_fold_in(
            tf.stack([tf.cast(seed, tf.int64), epoch]), tf.cast(index, tf.int64))
        if info.small_images:
            image = preprocessing.pad_crop_flip(raw, example_seed)
        else:
            image = preprocessing.random_resized_crop_flip(raw, example_seed, info.image_size)
        # The added augmentations draw from seeds of their own, so the crop and flip stay what they were.
        if augment.randaugment_layers:
            image = augmentations.randaugment(tf.cast(image, tf.float32), _fold(example_seed, 1),
                                              augment.randaugment_layers, augment.randaugment_magnitude)
        if augment.cutout:  # the mean pixel: 0 once normalized
            image = augmentations.cutout(tf.cast(image, tf.float32), _fold(example_seed, 2), augment.cutout,
                                         fill=info.mean)
        # Only mixup / cutmix need the example's seed after batching.
        return (image, label, _fold(example_seed, 3)) if augment.mixes else (image, label)

    return transform


def _fold(seed, k):
    return tf.random.experimental.stateless_fold_in(seed, k)


def _layout(global_batch_size: int, input_context) -> tuple:
    """(number of input pipelines, this pipeline's id, per-replica batch size)."""
    if input_context is None:
        return 1, 0, global_batch_size
    if global_batch_size % input_context.num_replicas_in_sync:
        raise DataError(f"global batch size {global_batch_size} is not divisible by the "
                        f"{input_context.num_replicas_in_sync} replicas; use a multiple of it")
    return (input_context.num_input_pipelines, input_context.input_pipeline_id,
            input_context.get_per_replica_batch_size(global_batch_size))


def _addressable_order(num_examples: int, epoch_length: int, pipelines: int, pipeline_id: int, skip: int,
                       seed: int, chunk: int = 1) -> tf.data.Dataset:
    """(epoch, example index) for this pipeline, forever, after skipping `skip` of them. Position s of the
    whole stream is position s % epoch_length of epoch s // epoch_length, which a stateless permutation
    seeded by (seed, epoch) maps to an example: no state, so skipping costs nothing. chunk > 1 (dividing skip):
    the same elements from a source of chunks of `chunk` consecutive ones, which a tf.data service splits."""
    def locate(t):
        position = t * pipelines + pipeline_id
        epoch = position // epoch_length
        index = tf.random.experimental.index_shuffle(
            position % epoch_length, tf.stack([tf.cast(seed, tf.int64), epoch]), tf.constant(num_examples - 1,
                                                                                               tf.int64))
        return epoch, index

    if chunk == 1:
        return tf.data.Dataset.range(skip, _MAX_STEPS).map(locate)
    chunks = tf.data.Dataset.range(skip // chunk, _MAX_STEPS // chunk)
    return chunks.flat_map(lambda c: tf.data.Dataset.range(c * chunk, (c + 1) * chunk)).map(locate)


def _streamed_order(split: Split, epoch_share: int, pipelines: int, pipeline_id: int, skip: int,
                    seed: int) -> tf.data.Dataset:
    """(epoch, example index, encoded image, label) for this pipeline, forever, after skipping `skip`. Records
    come in a fixed order; each epoch reshuffles them with a buffer seeded from (seed, epoch). Whole epochs are
    skipped without reading; the rest of a partial epoch is skipped before decoding."""
    first_epoch, skip_in_epoch = divmod(skip, epoch_share)

    def epoch_records(epoch):
        shuffle_seed = tf.random.stateless_uniform([], tf.stack([tf.cast(seed, tf.int64), epoch]),
                                                   minval=None, maxval=None, dtype=tf.int64)
        # The order is a function of (seed, epoch) alone, not of the process' global seed: shuffle pairs its seed
        # with the graph's, and a graph seed of 0 (train.py's default --seed=0 sets it) made tf.random's
        # (0, 0) check compare this tensor seed in Python, which fails to trace.
        tf.compat.v1.get_default_graph().seed = None
        records = split.records.enumerate().shuffle(STREAM_SHUFFLE_BUFFER, seed=shuffle_seed)
        records = records.take(epoch_share * pipelines).shard(pipelines, pipeline_id)
        return records.map(lambda index, record: (epoch, index, *record))

    epochs = tf.data.Dataset.range(first_epoch, _MAX_STEPS)
    return epochs.flat_map(epoch_records).skip(skip_in_epoch)


def _options(deterministic: bool) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = deterministic
    return options
