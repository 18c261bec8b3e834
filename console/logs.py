"""Keeps the console to our own lines (absl INFO records from tfds, its progress bars, a tf.data warning) and the
exit statuses to ours: `fail` for a one-line error, `run` for an entry point's main."""
import sys
import warnings

from absl import logging

from console import cuda_noise


def quiet():
    cuda_noise.import_tensorflow()  # ends the CUDA-line filter an entry point started (console/cuda_noise.py)
    logging.set_verbosity(logging.WARNING)
    warnings.filterwarnings("ignore", message="To make it possible to preserve tf.data options")
    import tensorflow_datasets as tfds
    tfds.disable_progress_bar()


HELP_FLAGS = ("help", "helpshort", "helpfull", "helpxml", "?")


def run(main):
    """absl's app.run(main), except that a help request exits 0: it did not fail (absl exits 1, which scripts,
    CI and `set -e` read as an error). A bad flag still exits 1."""
    from absl import app

    def parse(argv):
        try:
            return app.parse_flags_with_usage(argv)
        except SystemExit as e:
            flags = argv[1:argv.index("--")] if "--" in argv else argv[1:]
            if e.code == 1 and any(a.startswith("-") and a.lstrip("-").split("=")[0] in HELP_FLAGS for a in flags):
                sys.exit(0)
            raise

    app.run(main, flags_parser=parse)


def fail(message, status=1):
    """Exits with `status` and `error: message` as the last line of stderr (TensorFlow's shutdown warnings, e.g.
    about a half-restored checkpoint, are silenced so they can't follow it)."""
    logging.set_verbosity(logging.ERROR)
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)
