"""Train/eval pipelines on fake splits whose labels are example ids: order, resumption, sharding, eval counting."""
import numpy as np
import pytest
from conftest import two_replica_strategy
import tensorflow as tf

from data import DataError, DatasetInfo, make_eval_dataset, make_train_dataset
from data import pipeline
from data.datasets import Split


def _info(n, small=True, image_size=8):
    # mean 0 / std 1: normalized images are the raw pixels, which keeps assertions readable.
    return DatasetInfo(name="fake", num_classes=n, image_size=image_size, small_images=small, num_train=n,
                       num_eval=n, train_split="train", eval_split="test", class_names=tuple(map(str, range(n))),
                       mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _in_memory_split(n):
    """Random 8x8 images; label = example id; pixel [0, 0] of channel 2 also holds the id (images stay paired)."""
    images = np.random.RandomState(0).randint(1, 256, (n, 8, 8, 3)).astype(np.uint8)
    images[:, :, :, 2] = np.arange(n)[:, None, None] + 1
    images, labels = tf.constant(images), tf.range(n, dtype=tf.int32)
    return Split(n, tf.data.Dataset.from_tensor_slices((images, labels)),
                 lambda i: (tf.gather(images, i), tf.gather(labels, i)))


def _streamed_split(n):
    """Encoded 20x30 PNGs whose every pixel is id + 1, label = id, readable only in order (like a large tfds
    split)."""
    encoded = [tf.io.encode_png(tf.fill([20, 30, 3], tf.constant(i + 1, tf.uint8))) for i in range(n)]
    return Split(n, tf.data.Dataset.from_tensor_slices((tf.stack(encoded), tf.range(n, dtype=tf.int32))))


@pytest.fixture(params=["in_memory", "streamed"])
def fake(request, monkeypatch):
    """(info, n): a 20-example dataset, served either by index or as a stream."""
    n = 20
    split = _in_memory_split(n) if request.param == "in_memory" else _streamed_split(n)
    monkeypatch.setattr(pipeline, "load_split", lambda *args, **kwargs: split)
    return _info(n, small=request.param == "in_memory"), n


def _take(ds, count):
    return [tuple(t.numpy() for t in batch) for batch in ds.take(count)]


def test_train_batches_hold_images_with_their_labels(fake):
    info, _ = fake
    for images, labels in _take(make_train_dataset(info, global_batch_size=4, deterministic=True), 5):
        assert images.shape == (4, 8, 8, 3) and images.dtype == np.float32 and labels.dtype == np.int32
        if info.small_images:  # the id channel is constant, so crops keep it wherever they are not padding
            assert [int(im[..., 2].max()) - 1 for im in images] == labels.tolist()
        else:
            np.testing.assert_allclose(images.reshape(4, -1).mean(1), labels + 1, atol=0.01)


def test_each_epoch_visits_every_example_once_in_an_order_set_by_seed_and_epoch(fake):
    info, n = fake  # 20 examples, batch 4: 5 steps per epoch
    first = np.concatenate([b[1] for b in _take(make_train_dataset(info, global_batch_size=4, seed=1,
                                                                    deterministic=True), 10)])
    epoch0, epoch1 = first[:n], first[n:]
    assert sorted(epoch0) == list(range(n)) and sorted(epoch1) == list(range(n))
    assert epoch0.tolist() != epoch1.tolist()
    other_seed = np.concatenate([b[1] for b in _take(make_train_dataset(info, global_batch_size=4, seed=2,
                                                                         deterministic=True), 5)])
    assert other_seed.tolist() != epoch0.tolist()


def test_partial_last_batch_is_dropped_each_epoch(monkeypatch):
    monkeypatch.setattr(pipeline, "load_split", lambda *args, **kwargs: _in_memory_split(22))
    labels = [b[1] for b in _take(make_train_dataset(_info(22), global_batch_size=4, deterministic=True), 10)]
    for epoch in (labels[:5], labels[5:]):  # 22 // 4 = 5 steps, 20 distinct examples each
        assert len(set(np.concatenate(epoch).tolist())) == 20


def test_same_seed_same_stream_and_start_step_equals_skipping(fake):
    info, _ = fake
    make = lambda **kw: make_train_dataset(info, global_batch_size=4, seed=3, deterministic=True, **kw)
    reference = _take(make(), 9)
    again = _take(make(), 9)
    resumed = _take(make(start_step=6), 3)  # crosses into epoch 1 (steps 5..9)
    for a, b in zip(reference, again):
        np.testing.assert_array_equal(a[0], b[0])
    for a, b in zip(reference[6:], resumed):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_an_example_is_augmented_differently_in_another_epoch(monkeypatch):
    monkeypatch.setattr(pipeline, "load_split", lambda *args, **kwargs: _in_memory_split(20))
    batches = _take(make_train_dataset(_info(20), global_batch_size=4, deterministic=True), 10)
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    first, second = np.flatnonzero(labels == 0)
    assert not np.array_equal(images[first], images[second])


def test_resuming_far_ahead_is_cheap(monkeypatch):
    monkeypatch.setattr(pipeline, "load_split", lambda *args, **kwargs: _in_memory_split(20))
    images, labels = _take(make_train_dataset(_info(20), global_batch_size=4, start_step=10 ** 9), 1)[0]
    assert images.shape == (4, 8, 8, 3) and len(set(labels.tolist())) == 4


def test_two_replicas_pull_consecutive_halves_of_the_one_device_batch(fake):
    info, _ = fake
    single = _take(make_train_dataset(info, global_batch_size=8, seed=5, deterministic=True), 4)
    strategy = two_replica_strategy()
    distributed = iter(strategy.distribute_datasets_from_function(
        lambda ctx: make_train_dataset(info, global_batch_size=8, seed=5, input_context=ctx, deterministic=True)))
    for images, labels in single:
        replicas = strategy.experimental_local_results(next(distributed))
        np.testing.assert_array_equal(np.concatenate([r[1] for r in replicas]), labels)
        np.testing.assert_array_equal(np.concatenate([r[0] for r in replicas]), images)


def test_workers_take_disjoint_shares_of_each_global_batch(fake):
    info, _ = fake
    single = _take(make_train_dataset(info, global_batch_size=8, seed=5, deterministic=True), 5)
    workers = [_take(make_train_dataset(info, global_batch_size=8, seed=5, deterministic=True,
                                        input_context=tf.distribute.InputContext(2, w, 2)), 5) for w in (0, 1)]
    for step, (_, labels) in enumerate(single):
        shares = [workers[w][step][1] for w in (0, 1)]
        assert [len(s) for s in shares] == [4, 4]
        assert sorted(np.concatenate(shares).tolist()) == sorted(labels.tolist())


def test_batch_size_not_divisible_by_replicas_is_an_error(fake):
    info, _ = fake
    with pytest.raises(DataError, match="divisible"):
        make_train_dataset(info, global_batch_size=5, input_context=tf.distribute.InputContext(1, 0, 2))


def _eval_seen(batches):
    """{example id: total weight} and the number of batches, from (images, labels, weights) batches."""
    seen = {}
    for _, labels, weights in batches:
        for label, weight in zip(labels.tolist(), weights.tolist()):
            if weight:
                seen[label] = seen.get(label, 0) + weight
    return seen


@pytest.mark.parametrize("small", [True, False])
def test_eval_counts_each_of_13_examples_once_on_one_and_two_replicas(monkeypatch, small):
    monkeypatch.setattr(pipeline, "load_split",
                        lambda *args, **kwargs: _in_memory_split(13) if small else _streamed_split(13))
    info = _info(13, small=small)
    batches = _take(make_eval_dataset(info, global_batch_size=4), 100)
    assert len(batches) == 4 and all(b[0].shape[0] == 4 for b in batches)
    assert sum(b[2].sum() for b in batches) == 13 and _eval_seen(batches) == {i: 1.0 for i in range(13)}
    assert batches[-1][2].tolist() == [1.0, 0.0, 0.0, 0.0]

    strategy = two_replica_strategy()
    distributed = strategy.distribute_datasets_from_function(
        lambda ctx: make_eval_dataset(info, global_batch_size=4, input_context=ctx))
    per_replica, steps = [], 0
    for step_batches in distributed:
        steps += 1
        for replica in strategy.experimental_local_results(step_batches):
            assert replica[0].shape[0] == 2  # every replica gets a full per-replica batch every step
            per_replica.append(tuple(t.numpy() for t in replica))
    assert steps == 4 and _eval_seen(per_replica) == {i: 1.0 for i in range(13)}


def test_eval_across_workers_gives_equal_batch_counts_and_counts_each_example_once(fake):
    info, n = fake
    shares = [_take(make_eval_dataset(info, global_batch_size=12,
                                      input_context=tf.distribute.InputContext(2, w, 4)), 100) for w in (0, 1)]
    # ceil(20 / 12) = 2 steps; each worker feeds 2 replicas per step with batches of 3.
    assert [len(s) for s in shares] == [4, 4]
    assert all(b[0].shape[0] == 3 for s in shares for b in s)
    assert _eval_seen(shares[0] + shares[1]) == {i: 1.0 for i in range(n)}


def test_eval_is_ordered_and_repeatable(fake):
    info, n = fake
    first = _take(make_eval_dataset(info, global_batch_size=8), 100)
    second = _take(make_eval_dataset(info, global_batch_size=8), 100)
    assert np.concatenate([b[1] for b in first])[:n].tolist() == list(range(n))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a[0], b[0])


@pytest.mark.parametrize("augment", [None, dict(cutout=4), dict(randaugment_layers=2, randaugment_magnitude=9),
                                     dict(mixup_alpha=0.2, cutmix_alpha=1.0, cutmix_prob=0.5)])
def test_pixels_normalized_on_the_device_are_the_normalized_stream(monkeypatch, augment):
    """train.py takes the pixels and normalizes them in its step; everything else takes the normalized stream."""
    from data import Augment, preprocessing
    n = 20
    monkeypatch.setattr(pipeline, "load_split", lambda *args, **kwargs: _streamed_split(n))
    info = DatasetInfo(name="fake", num_classes=n, image_size=8, small_images=False, num_train=n, num_eval=n,
                       train_split="train", eval_split="test", class_names=tuple(map(str, range(n))),
                       mean=(120.0, 110.0, 100.0), std=(60.0, 55.0, 50.0))
    kwargs = dict(global_batch_size=4, seed=3, deterministic=True, augment=Augment(**(augment or {})))
    pixels = _take(make_train_dataset(info, pixels=True, **kwargs), 6)
    normalized = _take(make_train_dataset(info, **kwargs), 6)
    assert pixels[0][0].dtype == (np.uint8 if augment is None else np.float32)  # uint8 until an augmentation
    for (p, labels), (x, same_labels) in zip(pixels, normalized):
        np.testing.assert_array_equal(labels, same_labels)
        np.testing.assert_array_equal(preprocessing.normalize(p, info.mean, info.std), x)
    if augment and "cutout" in augment:  # the cutout square is the mean pixel: exactly 0 once normalized
        assert all((x == 0).all(axis=-1).any() for x, _ in normalized)


def test_a_streamed_order_is_the_same_whatever_the_global_seed(monkeypatch):
    # train.py sets the global seed to --seed (0 by default); the stream is a function of seed= alone.
    monkeypatch.setattr(pipeline, "load_split", lambda *args, **kwargs: _streamed_split(20))
    info = _info(20, small=False)
    orders = []
    for global_seed in (0, 5, None):
        tf.random.set_seed(global_seed)
        batches = _take(make_train_dataset(info, global_batch_size=4, seed=3, deterministic=True), 10)
        orders.append([labels.tolist() for _, labels in batches])
    assert orders[0] == orders[1] == orders[2]
