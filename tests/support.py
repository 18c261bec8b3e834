"""What the tests share: running the real entry points and reading their files, signals and checkpoints, mock
tfds datasets, and tiny in-process training set-ups. tests/ is on sys.path (conftest.py lives there), so every
test file, in any folder, imports it as `support`."""
import contextlib
import os
import re
import socket
import subprocess
import sys

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from training import config as config_lib

# Running the entry points and reading what they wrote.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the project


def run(script, *args, check=True):
    result = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, cwd=ROOT)
    if check and result.returncode:
        raise AssertionError(f"{script} failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    return result


def train_args(data_dir, model_dir, *extra):
    # The chapter's batch-norm decay 0.997 (the default): precise batch norm recomputes the statistics before
    # each eval, so a run this short evaluates with what its weights produce.
    return ("--dataset=cifar10", f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--depth=8",
            "--batch_size=32", "--log_every_steps=50", "--steps_per_loop=10",
            # float32: eval.py at another batch size then reproduces the run's evals exactly; in bfloat16 (what
            # --dtype=auto picks on AMX CPUs) oneDNN's kernels differ by batch size, and 2 of 1017 images flipped
            # (tests/entry_points/test_mixed_precision_cli.py covers bfloat16 runs)
            "--dtype=float32",
            # All 4068 training images (127 steps per epoch) and evaluations of the test split, for monitoring:
            # these tests are about other things; tests/training/loop/test_selection.py covers validation splits.
            "--validation_split=0", *extra)


def tensors(directory, tag):
    events = EventAccumulator(directory, size_guidance={"tensors": 0})
    events.Reload()
    return [(e.step, tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)]


def snapshot(directory):
    # Every file but LOCK, whose record of the last holder any train.py that takes the lock rewrites (a refused
    # second writer leaves it alone: tests/training/rundir/test_run_lock.py).
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, files in os.walk(directory) for f in files if f != "LOCK"}



# Signals, checkpoints and the stop line.
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def start(*argv, script="train.py"):
    return subprocess.Popen([sys.executable, script, *argv], cwd=ROOT, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def interrupt(process, when, how):
    """Sends signal `how` once the process prints a line starting with `when`; returns (status, rest of stdout)."""
    for line in process.stdout:
        if line.startswith(when):
            process.send_signal(how)
            break
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def weights(prefix):
    """Every variable of a checkpoint but the count of saves: weights, statistics, slots, iterations, step."""
    reader = tf.train.load_checkpoint(prefix)
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
            if n not in ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")}


def assert_bitwise_equal(a, b):
    a, b = weights(a), weights(b)
    assert a.keys() == b.keys() and len(a) > 60
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


STOPPED = re.compile(r"stopped (?:by SIG\w+ )?at step (\d+)(?:, ([\d.]+) s after the signal)? .*steps took ([\d.]+) s")


def stopped_at(out):
    """(step, seconds after the signal or None, seconds per step) from train.py's stop line."""
    step, after, per_step = STOPPED.search(out).groups()
    return int(step), after and float(after), float(per_step)


# Multi-worker runs on 127.0.0.1.
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Data.
@contextlib.contextmanager
def mock_tfds(data_dir, name, num_examples, splits=("train", "test")):
    """tfds.testing.mock_data plus the metadata files of a prepared dataset whose splits each hold num_examples
    (mock data yields num_examples for every split), so get_info sees a prepared dataset of known size."""
    builder = tfds.builder(name, data_dir=str(data_dir))
    template = tfds.core.ShardedFileTemplate(data_dir=builder.data_path, dataset_name=builder.name,
                                             filetype_suffix="tfrecord")
    builder.info.set_splits(tfds.core.SplitDict([
        tfds.core.SplitInfo(name=s, shard_lengths=[num_examples], num_bytes=0,
                            filename_template=template.replace(split=s)) for s in splits]))
    builder.data_path.mkdir(parents=True, exist_ok=True)
    builder.info.write_to_directory(builder.data_path)
    with tfds.testing.mock_data(num_examples=num_examples, data_dir=str(data_dir)):
        yield


# In-process training.
GLOBAL_BATCH = 8


def fake_batches(num_batches, batch=GLOBAL_BATCH, seed=1):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(num_batches * batch, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 10, size=num_batches * batch).astype("int32")
    return images, labels


def two_cpus():
    from conftest import two_replica_strategy
    return two_replica_strategy()


def one_cpu():
    return tf.distribute.OneDeviceStrategy("/cpu:0")


def make_config(**overrides):
    base = dict(dataset="cifar10", data_dir=None, image_size=32, num_classes=10, strict=False, model_dir="/tmp/x",
                depth=8, unit="auto", arch="auto", width=1.0, sync_bn=False, bn_momentum=0.997, batch_size=128, train_steps=1000,
                steps_per_epoch=390, learning_rate=0.1, lr_batch_denominator=128, lr_schedule="piecewise",
                lr_decay_epochs=(91.0, 136.0), warmup_epochs=0.0, momentum=0.9, nesterov=False, weight_decay=2e-4,
                label_smoothing=0.0, epochs_between_evals=1.0, steps_per_loop=20, log_every_steps=100,
                keep_checkpoints=5, keep_best=1, nan_policy="stop", debug_nan_at_step=None, seed=0,
                deterministic=False, dtype="float32", xla=False, strategy="auto",
                num_gpus=None, cpu_devices=1)
    return config_lib.Config(**{**base, **overrides})


@contextlib.contextmanager
def train_flags(data_dir, *base):
    """parse(*argv) -> (Config, printed lines) for train.py's flags: --dataset=cifar10 --data_dir=data_dir, then
    `base`, then argv. The flags are defined once per process and unparsed afterwards."""
    from absl import flags as absl_flags

    import flags
    try:
        flags.define_data_flags()
        flags.define_model_flags()
        flags.define_training_flags()
    except absl_flags.DuplicateFlagError:
        pass  # defined by an earlier test of this process

    def parse(*argv):
        absl_flags.FLAGS.unparse_flags()
        absl_flags.FLAGS(["train.py", "--dataset=cifar10", f"--data_dir={data_dir}", *base, *argv])
        lines = []
        config, _ = flags.make_config(absl_flags.FLAGS, out=lines.append)
        return config, lines
    try:
        yield parse
    finally:
        absl_flags.FLAGS.unparse_flags()
