"""python -m training.benchmark.op_profile: a trace summed by op type, each op at its fastest occurrence."""
import subprocess
import sys

import pytest
import tensorflow as tf

from training.benchmark import op_profile


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    """A trace of 3 calls of one conv -> relu -> matmul function."""
    logdir = str(tmp_path_factory.mktemp("trace"))
    images, kernel, weights = tf.random.normal((4, 16, 16, 3)), tf.random.normal((3, 3, 3, 8)), tf.random.normal((8, 2))
    step = tf.function(lambda: tf.matmul(tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(images, kernel, 1, "SAME")),
                                                        [1, 2]), weights))
    step()
    tf.profiler.experimental.start(logdir)
    for _ in range(3):
        step().numpy()
    tf.profiler.experimental.stop()
    return logdir


def test_ops_are_counted_once_per_step_at_their_fastest(trace):
    times = op_profile.op_times(trace)
    convolutions = {t: v for t, v in times.items() if op_profile.CONVOLUTION in t}
    (seconds, count), = convolutions.values()
    assert count == 1 and seconds > 0  # one conv op, at its fastest call: not the sum of the three
    assert "Process" not in times


def test_the_table_puts_runs_side_by_side(trace):
    lines = op_profile.table([trace, trace])
    assert lines[-3].startswith("convolutions") and lines[-1].startswith("total")
    assert lines[-1].count("100.0 %") == 2


def test_a_directory_without_a_trace_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "training.benchmark.op_profile", str(tmp_path)], capture_output=True,
                            text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: no tf.profiler trace (*.xplane.pb) under {tmp_path}"
