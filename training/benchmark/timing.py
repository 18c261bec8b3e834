"""The book chapter's `time_tensorflow_run` on our models: forward, forward-backward and full train steps.
Without a top (AlexNet up to pool5, as the chapter times it) forward-backward takes the l2 loss of the feature map."""
import contextlib
import datetime
import math
import time

import tensorflow as tf

import model as resnet
from training.compute import optimizer as optim, step as steps

MODES = {"forward": "Forward", "forward_backward": "Forward-backward", "train": "Train"}


def make_workload(net, mode, batch_size, image_size, num_classes, xla=False, dataset=None):
    """A tf.function running one batch of `mode`: on fixed random inputs, as the chapter's benchmark does, or on the
    next batch of `dataset` (images, labels), so that the input pipeline's cost is part of the time. For forward,
    `net` may be any net(images, training=False), such as network.Frozen."""
    if dataset is None:
        fixed = (tf.random.normal((batch_size, image_size, image_size, 3)),
                 tf.random.uniform((batch_size,), maxval=num_classes, dtype=tf.int32))
        batch = lambda: fixed  # noqa: E731
    else:
        iterator = iter(dataset)
        batch = lambda: next(iterator)  # noqa: E731
    if mode == "forward":
        # The chapter times inference: resnet_arg_scope(is_training=False).
        def run():
            return net(batch()[0], training=False)
    elif mode == "forward_backward":
        # The chapter's protocol: an l2 loss on the logits, gradients of every trainable variable.
        def run():
            with tf.GradientTape() as tape:
                objective = tf.nn.l2_loss(tf.cast(net(batch()[0], training=True), tf.float32))
            return tape.gradient(objective, net.trainable_variables)
    elif mode == "train":
        if len(net.output.shape) != 2:
            raise ValueError(f"mode train needs a model with logits, not one ending in {net.output.shape}")
        schedule = optim.Schedule(base_lr=0.1, total_steps=1)
        opt = optim.create(schedule, momentum=0.9, loss_scaling=net.dtype_policy.name == "mixed_float16")
        opt.build(net.trainable_variables)
        train_step = steps.make_train_step(net, opt, global_batch_size=batch_size, weight_decay=1e-4)

        def run():
            images, labels = batch()
            return train_step(images, labels, tf.constant(1, tf.int64))
    else:
        raise ValueError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    return tf.function(run, jit_compile=xla)


def matmul_peak(size=2048, repeats=20, dtype="float32"):
    """GFLOP/s of a size x size matmul in `dtype`, the best of `repeats`: what this machine's cores can do."""
    a, b = tf.random.normal((size, size), dtype=dtype), tf.random.normal((size, size), dtype=dtype)
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    matmul().numpy()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        matmul().numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def time_run(fn, info_string, num_batches, warmup_steps=10, out=print):
    """Runs fn warmup_steps + num_batches times and prints the chapter's lines; returns (mean, std) seconds."""
    total, total_squared = 0.0, 0.0
    for i in range(num_batches + warmup_steps):
        start = time.perf_counter()
        # .numpy() on one output waits for the device, so the duration covers the whole batch.
        tf.nest.flatten(fn())[0].numpy()
        duration = time.perf_counter() - start
        if i >= warmup_steps:
            if not (i - warmup_steps) % 10:
                out(f"{datetime.datetime.now()}: step {i - warmup_steps}, duration = {duration:.3f}")
            total += duration
            total_squared += duration * duration
    mean = total / num_batches
    std = math.sqrt(max(total_squared / num_batches - mean * mean, 0.0))
    out(f"{datetime.datetime.now()}: {info_string} across {num_batches} steps, {mean:.3f} +/- {std:.3f} sec / batch")
    return mean, std


@contextlib.contextmanager
def profiled(logdir):
    """A tf.profiler trace of the block into logdir (None: no trace), for python -m training.benchmark.op_profile."""
    if logdir:
        tf.profiler.experimental.start(logdir)
    try:
        yield
    finally:
        if logdir:
            tf.profiler.experimental.stop()


def flops_per_batch(net, mode, batch_size):
    """FLOPs (2 per multiply-add) of one batch; the backward pass is counted as twice the forward, as usual."""
    forward = 2 * resnet.flops_per_image(net) * batch_size
    return forward if mode == "forward" else 3 * forward
