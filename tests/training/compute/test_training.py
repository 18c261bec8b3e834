"""The train step and loop: global-batch loss scaling, batch-norm updates in every step, replica equivalence,
mixed precision and XLA, schedules and the step arithmetic of the loop."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import model
from training.compute import optimizer as optim, step as steps
from training.loop import blocks as loop
from support import GLOBAL_BATCH, fake_batches, make_config, one_cpu, two_cpus


def train(strategy, num_steps=3, sync_bn=False, xla=False, lr=0.1, seed=3, same_batch=False):
    """Builds a depth-8 net under `strategy` and trains num_steps on fixed batches; returns (net, metrics)."""
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        net, _ = model.create(8, num_classes=10, image_size=32, sync_bn=sync_bn)
        opt = optim.create(optim.Schedule(base_lr=lr, total_steps=num_steps), momentum=0.9,
                           loss_scaling=keras.mixed_precision.global_policy().name == "mixed_float16")
        opt.build(net.trainable_variables)
    images, labels = fake_batches(1 if same_batch else num_steps)
    if same_batch:
        images, labels = np.tile(images, (num_steps, 1, 1, 1)), np.tile(labels, num_steps)

    def dataset_fn(ctx):
        per_replica = ctx.get_per_replica_batch_size(GLOBAL_BATCH)
        return tf.data.Dataset.from_tensor_slices((images, labels)).batch(per_replica)

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    train_step = steps.make_train_step(net, opt, global_batch_size=GLOBAL_BATCH, weight_decay=1e-4)
    train_loop = loop.make_train_loop(strategy, train_step, xla)
    history = []
    for step in range(num_steps):
        window = loop.Window()
        window.add(train_loop(iterator, tf.constant(step, tf.int64), tf.constant(1))[1], 1)
        history.append(window.take())
    return net, history


def moving_statistics(net):
    return [v for v in net.non_trainable_weights if "moving" in v.path]


def test_batch_norm_statistics_update_in_every_step():
    keras.utils.set_random_seed(0)
    net, _ = train(one_cpu(), num_steps=0)
    initial = [v.numpy().copy() for v in moving_statistics(net)]
    net, _ = train(one_cpu(), num_steps=1, seed=0)
    after_one = [v.numpy().copy() for v in moving_statistics(net)]
    net, _ = train(one_cpu(), num_steps=2, seed=0)
    after_two = [v.numpy() for v in moving_statistics(net)]
    assert len(initial) == 2 * len([layer for layer in net.layers if "bn" in layer.name])
    for a, b, c in zip(initial, after_one, after_two):
        assert not np.allclose(a, b) and not np.allclose(b, c)


def test_replicas_keep_identical_batch_norm_statistics():
    net, _ = train(two_cpus(), num_steps=2)
    for v in moving_statistics(net):
        first, second = (t.numpy() for t in two_cpus().experimental_local_results(v.value))
        np.testing.assert_array_equal(first, second)
        assert not np.allclose(first, 1.0 if "variance" in v.path else 0.0)


def test_mirrored_equals_one_device_with_the_same_global_batch():
    # With synchronized batch norm both runs normalize over the same 8 images, so only summation order differs.
    one, one_history = train(one_cpu(), sync_bn=True)
    two, two_history = train(two_cpus(), sync_bn=True)
    assert two_history[0]["loss"] == pytest.approx(one_history[0]["loss"], rel=1e-5)
    for a, b in zip(one.weights, two.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)
    assert not np.allclose(one.get_layer("logits").kernel.numpy(), model.create(8, 10, 32)[0]
                           .get_layer("logits").kernel.numpy())


def test_loss_is_cross_entropy_over_the_global_batch_plus_l2():
    net, history = train(two_cpus(), num_steps=1, lr=0.0)
    images, labels = fake_batches(1)
    expected_l2 = 1e-4 * sum(float(tf.nn.l2_loss(k)) for k in model.weight_decay_variables(net))
    assert history[0]["l2"] == pytest.approx(expected_l2, rel=1e-5)
    assert history[0]["cross_entropy"] > 0 and history[0]["loss"] == pytest.approx(
        history[0]["cross_entropy"] + expected_l2, rel=1e-6)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_mixed_precision_trains_with_float32_variables(dtype):
    keras.mixed_precision.set_global_policy(f"mixed_{dtype}")
    try:
        net, history = train(one_cpu(), num_steps=12, lr=0.05, same_batch=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    losses = [h["loss"] for h in history]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < np.mean(losses[:3])  # the same 12 images each step: it must fit them
    assert net.get_layer("stage1_unit1_conv1").compute_dtype == dtype
    assert all(v.dtype == "float32" for v in net.weights)


def test_xla_compiled_step_matches_the_plain_one():
    plain, plain_history = train(one_cpu(), num_steps=2)
    compiled, compiled_history = train(one_cpu(), num_steps=2, xla=True)
    assert compiled_history[-1]["loss"] == pytest.approx(plain_history[-1]["loss"], rel=1e-3)


def test_a_set_stop_flag_ends_the_block_after_the_step_in_flight_on_every_replica():
    strategy = two_cpus()
    with strategy.scope():
        net, _ = model.create(8, num_classes=10, image_size=32)
        opt = optim.create(optim.Schedule(base_lr=0.1, total_steps=6), momentum=0.9)
        opt.build(net.trainable_variables)
    images, labels = fake_batches(6)
    iterator = iter(strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_tensor_slices((images, labels)).batch(ctx.get_per_replica_batch_size(
            GLOBAL_BATCH))))
    flag = tf.Variable([0.0, 0.0])
    train_loop = loop.make_train_loop(strategy, steps.make_train_step(net, opt, global_batch_size=GLOBAL_BATCH,
                                                                      weight_decay=1e-4), stop_flag=flag, optimizer=opt)
    ran, _, _, votes = train_loop(iterator, tf.constant(0, tf.int64), tf.constant(2))
    assert int(ran) == 2 and votes.numpy().tolist() == [0.0, 0.0]  # no flag: the whole block
    flag.assign([1.0, 0.0])  # what the watcher thread does on SIGTERM
    ran, sums, _, votes = train_loop(iterator, tf.constant(2, tf.int64), tf.constant(4))
    assert int(ran) == 1 and float(sums["examples"]) == GLOBAL_BATCH  # one step of the four, counted once
    assert votes.numpy().tolist() == [2.0, 0.0] and int(opt.iterations.numpy()) == 3  # both replicas saw SIGTERM


def test_piecewise_schedule_with_warmup():
    lr = optim.LearningRate(optim.Schedule(base_lr=0.4, total_steps=100, warmup_steps=10, boundaries=(50, 80)))
    assert float(lr(0)) == pytest.approx(0.04)
    assert float(lr(9)) == pytest.approx(0.4)
    assert float(lr(49)) == pytest.approx(0.4)
    assert float(lr(50)) == pytest.approx(0.04)
    assert float(lr(80)) == pytest.approx(0.004)


def test_cosine_schedule():
    lr = optim.LearningRate(optim.Schedule(base_lr=0.1, total_steps=110, warmup_steps=10, kind="cosine"))
    assert float(lr(10)) == pytest.approx(0.1)
    assert float(lr(60)) == pytest.approx(0.05)
    assert float(lr(110)) == pytest.approx(0.0, abs=1e-7)


def test_loop_stops_at_every_log_checkpoint_eval_and_the_end():
    config = make_config(train_steps=800, steps_per_loop=64, log_every_steps=100, steps_per_epoch=390)
    step, stops = 0, []
    while step < config.train_steps:
        step += min(config.steps_per_loop, loop.steps_until_event(step, config))
        stops.append(step)
    for event in (100, 200, 390, 700, 780, 800):
        assert event in stops
    assert max(np.diff([0] + stops)) <= 64


def test_linear_learning_rate_scaling():
    assert make_config(batch_size=256).lr == pytest.approx(0.2)
    assert dataclasses.replace(make_config(), batch_size=64, lr_batch_denominator=256).lr == pytest.approx(0.025)
