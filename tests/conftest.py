"""Test setup: two logical CPU devices, so MirroredStrategy runs with two replicas on any machine.

This must run before TensorFlow initializes its devices, which is why it lives at import time here.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from training.distribute.strategy import split_cpu  # noqa: E402

split_cpu(2)


import functools  # noqa: E402

import pytest  # noqa: E402


@functools.cache
def two_replica_strategy():
    """One MirroredStrategy over the two logical CPUs for the whole session: a second instance in the same
    process reuses collective instance keys and its all-reduces can pair up with the first one's."""
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture
def two_replicas():
    return two_replica_strategy()


SHARED_SUBSET = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "shared", "data", "cifar-10-subset-binary.tar.gz")


@pytest.fixture(scope="session")
def cifar_subset_dir(tmp_path_factory):
    """A tfds data_dir holding cifar10 prepared offline from the shared subset archive (4068 train / 1017 test)."""
    import subprocess
    data_dir = tmp_path_factory.mktemp("tfds")
    subprocess.run([sys.executable, "-m", "data.prepare", "cifar10", f"--archive={SHARED_SUBSET}",
                    f"--data_dir={data_dir}", "--allow_unverified"], check=True, capture_output=True,
                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return str(data_dir)
