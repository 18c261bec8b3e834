"""Keeps the console to our own lines: absl INFO records from tfds, its progress bars and a tf.data warning."""
import warnings

from absl import logging


def quiet():
    logging.set_verbosity(logging.WARNING)
    warnings.filterwarnings("ignore", message="To make it possible to preserve tf.data options")
    import tensorflow_datasets as tfds
    tfds.disable_progress_bar()


def fail(message, status=1):
    """Exits with `status` and `error: message` as the last line of stderr (TensorFlow's shutdown warnings, e.g.
    about a half-restored checkpoint, are silenced so they can't follow it)."""
    import sys
    logging.set_verbosity(logging.ERROR)
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)
