"""The modern recipe's augmentations (data/augment.py): shapes, value ranges, determinism per seed, soft targets
that sum to 1, and a resumed pipeline equal to the uninterrupted one; test-time augmentation's views."""
import numpy as np
import pytest
import tensorflow as tf

import data
from data import augment, preprocessing
from support import mock_tfds

SEED = tf.constant([3, 4], tf.int64)
OTHER_SEED = tf.constant([3, 5], tf.int64)


def image(seed=0, size=32):
    return tf.constant(np.random.default_rng(seed).uniform(0, 255, (size, size, 3)).astype(np.float32))


@pytest.mark.parametrize("name", list(augment.OPERATIONS))
def test_each_randaugment_operation_keeps_shape_and_range(name):
    x = image()
    for sign in (-1.0, 1.0):
        out = augment.OPERATIONS[name](x, 0.9, sign)
        assert out.shape == x.shape and out.dtype == tf.float32
        assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 255.0
        changed = float(tf.reduce_mean(tf.abs(out - x)))
        assert changed == 0.0 if name == "identity" else changed > 0.05, (name, sign, changed)


def test_randaugment_is_a_function_of_the_seed_eager_and_in_a_graph():
    x = image()
    eager = augment.randaugment(x, SEED, 2, 9)
    graph = tf.function(lambda x, s: augment.randaugment(x, s, 2, 9))(x, SEED)
    np.testing.assert_array_equal(eager, graph)
    draws = [augment.randaugment(x, tf.constant([0, s], tf.int64), 2, 9) for s in range(8)]
    assert len({d.numpy().tobytes() for d in draws}) >= 6  # different seeds, different operations
    assert all(d.shape == x.shape and 0 <= float(tf.reduce_min(d)) and float(tf.reduce_max(d)) <= 255 for d in draws)


def test_cutout_zeroes_one_square_and_nothing_else():
    x = image() / 100.0 + 1.0  # no zeros of its own
    out = augment.cutout(x, SEED, 16).numpy()
    zeroed = np.all(out == 0, axis=-1)
    rows, cols = np.nonzero(zeroed)
    assert 0 < zeroed.sum() <= 256 and zeroed.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)  # a (clipped) square
    np.testing.assert_array_equal(out[~zeroed], x.numpy()[~zeroed])
    np.testing.assert_array_equal(out, augment.cutout(x, SEED, 16))
    assert not np.array_equal(out, augment.cutout(x, OTHER_SEED, 16))


@pytest.mark.parametrize("method", ["mixup", "cutmix"])
def test_mixing_gives_soft_targets_that_sum_to_one_and_match_the_pixels(method):
    images = tf.stack([tf.fill([32, 32, 3], float(i)) for i in range(4)])  # image i is all i
    labels = tf.constant([0, 1, 2, 3])
    settings = augment.Augment(mixup_alpha=0.4, mixup_prob=1.0) if method == "mixup" else \
        augment.Augment(cutmix_alpha=1.0, cutmix_prob=1.0)
    for s in range(5):
        mixed, targets = augment.mix(images, labels, tf.constant([s, 1], tf.int64), 5, settings)
        targets = targets.numpy()
        np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
        lam = targets[0, 0]
        assert targets[0, 3] == pytest.approx(1 - lam, abs=1e-6)  # example 0's partner is example 3
        if method == "mixup":
            np.testing.assert_allclose(mixed[0], lam * 0 + (1 - lam) * 3, atol=1e-5)
        else:  # the share of example 0's pixels that came from example 3 is its target weight
            assert np.mean(mixed.numpy()[0] == 3.0) == pytest.approx(1 - lam, abs=1e-6)
        again = augment.mix(images, labels, tf.constant([s, 1], tf.int64), 5, settings)
        np.testing.assert_array_equal(mixed, again[0])


def test_mix_probabilities_choose_per_batch():
    images, labels = tf.stack([image(i) for i in range(4)]), tf.constant([0, 1, 2, 3])
    settings = augment.Augment(mixup_alpha=0.2, cutmix_alpha=1.0, mixup_prob=0.25, cutmix_prob=0.25)
    unmixed = sum(float(augment.mix(images, labels, tf.constant([s, 0], tf.int64), 4, settings)[1][0, 0]) == 1.0
                  for s in range(200))
    assert 70 < unmixed < 130  # half the batches are left alone


AUGMENT = augment.Augment(cutout=8, randaugment_layers=2, mixup_alpha=0.2, cutmix_alpha=1.0, mixup_prob=0.5,
                          cutmix_prob=0.5)


def test_pipeline_with_every_augmentation_resumes_exactly(tmp_path):
    with mock_tfds(tmp_path, "cifar10", num_examples=24):
        info = data.get_info("cifar10")
        stream = lambda start: data.make_train_dataset(info, global_batch_size=8, seed=1, start_step=start,  # noqa
                                                       deterministic=True, augment=AUGMENT)
        whole = [b for _, b in zip(range(7), stream(0))]
        resumed = [b for _, b in zip(range(2), stream(5))]
    for (a_images, a_targets), (b_images, b_targets) in zip(whole[5:], resumed):
        np.testing.assert_array_equal(a_images, b_images)
        np.testing.assert_array_equal(a_targets, b_targets)
    images, targets = whole[0]
    assert images.shape == (8, 32, 32, 3) and targets.shape == (8, 10)
    np.testing.assert_allclose(targets.numpy().sum(axis=1), 1.0, atol=1e-6)
    assert np.isfinite(images.numpy()).all()


def test_tta_views():
    batch = tf.constant(np.random.default_rng(0).normal(size=(2, 256, 256, 3)).astype(np.float32))
    flip = preprocessing.tta_views(batch[:, :224, :224], "flip", 224)
    np.testing.assert_array_equal(flip[1], batch[:, :224, :224][:, :, ::-1])
    views = preprocessing.tta_views(batch, "flip+crops", 224)
    assert views.shape == (10, 2, 224, 224, 3)
    np.testing.assert_array_equal(views[0], batch[:, 16:240, 16:240])  # the plain eval crop
    np.testing.assert_array_equal(views[4], batch[:, 32:, 32:])
    np.testing.assert_array_equal(views[9], batch[:, 32:, 32:][:, :, ::-1])


def test_flip_tta_of_a_mirror_symmetric_input_equals_plain_eval():
    import model
    from training.compute import step as steps
    net, _ = model.create(8, 10, 32)
    x = tf.constant(np.random.default_rng(1).normal(size=(4, 32, 32, 3)).astype(np.float32))
    symmetric = (x + x[:, :, ::-1]) / 2
    plain = tf.nn.softmax(steps.predict(net, symmetric))
    flipped = tf.nn.softmax(steps.predict(net, symmetric, "flip", 32))
    np.testing.assert_allclose(flipped, plain, atol=1e-6)
    assert not np.allclose(tf.nn.softmax(steps.predict(net, x, "flip", 32)), tf.nn.softmax(steps.predict(net, x)),
                           atol=1e-6)  # but not on any input: the net itself is not mirror-symmetric
