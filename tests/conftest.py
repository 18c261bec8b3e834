"""Test setup: two logical CPU devices, so MirroredStrategy runs with two replicas on any machine.

This must run before TensorFlow initializes its devices, which is why it lives at import time here.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])


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
