"""TensorFlow's CUDA probing lines, dropped on a machine without a GPU. Importing TensorFlow and listing its devices
(cuInit) writes them to file descriptor 2 from C++, before absl's logging is set up, so TF_CPP_MIN_LOG_LEVEL can't reach
them: "WARNING: All log messages before absl::InitializeLog() ..." and "cudart_stub.cc:31] Could not find cuda
drivers ..." (each twice: two libraries load) and "E0000 ... failed call to cuInit: ... UNKNOWN ERROR (303)". A
newcomer reads the E0000 as a failure. From an entry point's first line (start) to TensorFlow's first device listing
(import_tensorflow, called by console.logs.quiet) or the process' exit, fd 2 is a pipe that a thread forwards line
by line, as each arrives, to the real stderr, except these lines; every other line passes, in order. A machine
with an NVIDIA driver keeps every line (there they carry news)."""
import atexit
import contextlib
import glob
import os
import re
import sys
import threading

NOISE = (
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"I\d{4} [\d:.]+ +\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not "
               r"be used\."),
    re.compile(r"E\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit: .*UNKNOWN ERROR \(303\)"),
)
DRAIN_SECONDS = 5.0  # a child started in the window keeps the pipe open; stop waiting for it after this long


def gpu_present():
    """Whether an NVIDIA driver is loaded here (its device files or /proc entry exist)."""
    return os.path.exists("/proc/driver/nvidia") or bool(glob.glob("/dev/nvidia[0-9]*")) or \
        os.path.exists("/dev/nvidiactl")


def is_noise(line):
    return any(pattern.fullmatch(line.rstrip("\r\n")) for pattern in NOISE)


_active = None  # (fd, the real stderr's duplicate, the forwarding thread) while filtering


def start(fd=2):
    """Filters `fd` from now until stop() (import_tensorflow calls it) or the exit; nothing on a GPU machine."""
    global _active
    if _active or gpu_present():
        return
    sys.stderr.flush()
    real = os.dup(fd)
    read_end, write_end = os.pipe()
    os.dup2(write_end, fd)
    os.close(write_end)
    forwarder = threading.Thread(target=_forward, args=(read_end, real), daemon=True, name="cuda-noise-filter")
    forwarder.start()
    _active = fd, real, forwarder
    atexit.register(stop)


def start_if_module(*names):
    """start() when this process is `python -m NAME` for one of names: a package's __init__ runs (and imports
    TensorFlow) before its __main__ or CLI module can."""
    argv = getattr(sys, "orig_argv", [])
    if any(a == "-m" and i + 1 < len(argv) and argv[i + 1] in names for i, a in enumerate(argv)):
        start()


def stop():
    """fd 2 is the real stderr again, once every line written so far has been forwarded."""
    global _active
    if not _active:
        return
    fd, real, forwarder = _active
    _active = None
    sys.stderr.flush()
    os.dup2(real, fd)  # the pipe's last write end closes: the forwarder reads to its end
    forwarder.join(DRAIN_SECONDS)
    if not forwarder.is_alive():
        os.close(real)


def real_stderr():
    """The file descriptor of the real stderr: fd 2, or its duplicate while fd 2 is the filter's pipe. For a last
    line written just before os._exit, which would cut the forwarder off (stop() could wait for it)."""
    return _active[1] if _active else 2


def import_tensorflow():
    """TensorFlow, imported and its devices probed (where cuInit runs), then the filter stopped."""
    import tensorflow as tf
    tf.config.list_physical_devices()
    stop()
    return tf


@contextlib.contextmanager
def filtered():
    """start() ... stop() around a block."""
    start()
    try:
        yield
    finally:
        stop()


def _forward(read_end, real):
    pending = b""
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        _write(real, [line + b"\n" for line in lines])
    _write(real, [pending] if pending else [])
    os.close(read_end)


def _write(fd, lines):
    kept = b"".join(line for line in lines if not is_noise(line.decode("utf-8", "replace")))
    while kept:
        kept = kept[os.write(fd, kept):]
