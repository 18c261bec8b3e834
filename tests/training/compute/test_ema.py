"""Weight EMA (training/compute/ema.py) and precise batch norm (training/compute/bn_stats.py): the average is the formula over
the raw weights of every step, on two replicas; the recomputed statistics are global and the 300-step run that
the moving averages misjudged evaluates like the whole training split's statistics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import data
import model
from support import GLOBAL_BATCH, fake_batches, one_cpu, run, two_cpus
from training.compute import bn_stats, ema as averaging, network, optimizer as optim, step as steps
from training.evaluation import evaluator as evaluation
from training.loop import blocks as loop
from training.rundir import checkpoints, run_dir


def test_decay_warms_up_as_timm_model_ema_v3():
    decay = lambda t, d=0.9999: float(averaging.decay_at(t, d))  # noqa: E731
    assert decay(1) == 0.0  # the first update copies the weights
    assert decay(2) == pytest.approx(1 - 2 ** (-2 / 3))
    assert decay(31) == pytest.approx(1 - 31 ** (-2 / 3)) == pytest.approx(0.9, abs=0.01)
    assert decay(10 ** 6, 0.999) == pytest.approx(0.999)


def test_average_after_k_steps_is_the_formula_over_the_raw_weights():
    strategy, num_steps, decay = two_cpus(), 5, 0.9
    keras.utils.set_random_seed(0)
    with strategy.scope():
        net, _ = model.create(8, num_classes=10, image_size=32)
        opt = optim.create(optim.Schedule(base_lr=0.1, total_steps=num_steps), momentum=0.9)
        opt.build(net.trainable_variables)
        ema = averaging.WeightEma(net, decay)
    images, labels = fake_batches(num_steps)
    iterator = iter(strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_tensor_slices((images, labels)).batch(ctx.get_per_replica_batch_size(
            GLOBAL_BATCH))))
    train_loop = loop.make_train_loop(strategy, steps.make_train_step(net, opt, global_batch_size=GLOBAL_BATCH,
                                                                      weight_decay=1e-4), ema=ema)
    expected = None
    for step in range(num_steps):
        train_loop(iterator, tf.constant(step, tf.int64), tf.constant(1))
        raw = {averaging.key(v): v.numpy() for v in net.trainable_variables}
        d = float(averaging.decay_at(step + 1, decay))
        expected = raw if expected is None else {k: d * expected[k] + (1 - d) * raw[k] for k in raw}
    for k, value in expected.items():
        np.testing.assert_allclose(ema.shadow[k].numpy(), value, rtol=1e-5, atol=1e-6, err_msg=k)
        for replica_value in strategy.experimental_local_results(ema.shadow[k]):
            np.testing.assert_array_equal(replica_value.numpy(), ema.shadow[k].numpy())  # every replica alike
    raw = [v.numpy() for v in net.weights]
    with ema.swapped_in():
        np.testing.assert_array_equal(net.get_layer("logits").kernel.numpy(), ema.shadow["logits:kernel"].numpy())
    for before, v in zip(raw, net.weights):
        np.testing.assert_array_equal(before, v.numpy())  # swapped back exactly


def test_recomputed_statistics_are_global_under_two_replicas(tmp_path):
    from support import mock_tfds
    results = []
    with mock_tfds(tmp_path, "cifar10", num_examples=64):
        info = data.get_info("cifar10")
        for strategy in (one_cpu(), two_cpus()):
            keras.utils.set_random_seed(0)
            with strategy.scope():
                net, _ = model.create(8, num_classes=10, image_size=32)
            line = bn_stats.PreciseBatchNorm(strategy, net, info, batch_size=16, examples=64, seed=0).recompute()
            assert line.startswith("precise batch norm: 7 layers from 64 training images in ")
            results.append([v.numpy() for v in net.non_trainable_weights])
    # The first batch norm sees the same inputs either way: its statistics agree to rounding. Deeper ones see
    # activations normalized by per-replica batches of 8 rather than 16, as in training itself: close, not equal.
    for a, b in zip(results[0][:2], results[1][:2]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-3)
    assert not np.allclose(results[0][1], 1.0)  # the variances moved from their initial 1


def test_a_300_step_run_evaluates_like_statistics_over_the_whole_training_split(cifar_subset_dir, tmp_path):
    """The issue's measurement: depth 8, batch 64, 300 steps, default flags."""
    out = run("train.py", "--dataset=cifar10", f"--data_dir={cifar_subset_dir}", f"--model_dir={tmp_path}",
              "--depth=8", "--batch_size=64", "--train_steps=300", "--log_every_steps=100").stdout
    reported = float(out.strip().splitlines()[-1].split("test top-1 ")[1].split()[0])
    config, info = run_dir.require_config(str(tmp_path)), run_dir.read_dataset_info(str(tmp_path))
    strategy = tf.distribute.get_strategy()
    net, _ = network.create(config, info.num_classes)
    checkpoints.restore(tf.train.latest_checkpoint(str(tmp_path)), model=net)
    whole = bn_stats.PreciseBatchNorm(strategy, net, info, batch_size=64, examples=info.num_train, seed=1,
                                      data_dir=cifar_subset_dir)
    assert whole.examples == info.num_train // 64 * 64  # every batch of an epoch
    whole.recompute()
    recomputed = evaluation.Evaluator(strategy, net, info, 64, cifar_subset_dir)()["top_1"]
    assert abs(reported - recomputed) <= 0.02, (reported, recomputed)
    assert reported > 0.3  # the moving averages gave 0.19 here
