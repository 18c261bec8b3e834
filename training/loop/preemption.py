"""SIGTERM / SIGINT: before training, an exit at once; during training, a stop after the step in flight, a
checkpoint, and a documented exit status.

Python runs a signal handler only between bytecodes of the main thread, never while a block of --steps_per_loop
steps runs inside one tf.function call. So the signal also wakes a watcher thread (signal.set_wakeup_fd), which
sets `Preemption.flag`, a variable the in-graph loop reads after every step. The loop sums it over every replica
and worker with that step's metrics, so all of them stop after the same step."""
import os
import signal
import sys
import threading
import time

from console import cuda_noise

# Exit statuses of a run stopped by a signal: the shell's 128 + signal number, so schedulers treat the run as
# terminated (and requeue it), and re-running the same command resumes it.
EXIT_STATUS = {signal.SIGTERM: 143, signal.SIGINT: 130}
NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}


def exit_status(votes):
    """The exit status of every worker of a run stopped by `votes` (summed flags): 143 if any worker saw SIGTERM,
    else 130, so that a worker stopped because another one was signalled exits like it."""
    return EXIT_STATUS[signal.SIGTERM] if votes[0] > 0 else EXIT_STATUS[signal.SIGINT]


def exit_on_signal(what="nothing to save"):
    """SIGTERM and SIGINT end the process at once, with one line (`what` follows) and 143 / 130; train.py's
    Preemption takes over while it trains. Without a handler, Python as a container's PID 1 would ignore SIGTERM,
    and `docker stop` would wait out its grace period and SIGKILL the process (137).

    The exit is os._exit, never an exception: a SystemExit raised by a handler that runs inside a TensorFlow call
    (a tf.data or checkpoint callback through pybind11) became a RuntimeError traceback and exit 1. A watcher
    thread, woken through signal.set_wakeup_fd, exits even while the main thread is inside a long C++ call that
    released the GIL; the handler itself exits at the next bytecode otherwise. Nothing is lost: before training
    there is nothing to save, and stdout is line-buffered so every line printed so far is out."""
    lines = {s: f"stopped by {NAMES[s]}; {what}\n".encode() for s in EXIT_STATUS}  # no work left for a signal
    quitting = threading.Lock()

    def quit_now(signum):
        if quitting.acquire(blocking=False):  # the watcher or the handler, whichever comes first, exits
            # fd 2 may still be the CUDA-line filter's pipe, whose forwarder os._exit would cut off
            os.write(cuda_noise.real_stderr(), lines[signum])
            os._exit(EXIT_STATUS[signum])

    def watch(read_end):
        while True:
            for signum in os.read(read_end, 16):
                if signum in EXIT_STATUS:
                    quit_now(signum)

    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # set_wakeup_fd's requirement: a signal never blocks on it
    threading.Thread(target=watch, args=(read_end,), name="startup-signals", daemon=True).start()
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)  # Preemption swaps in its own, then restores this
    for s in EXIT_STATUS:
        signal.signal(s, lambda signum, frame: quit_now(signum))


class Preemption:
    """Context manager that turns SIGTERM/SIGINT into a stop request instead of an abrupt exit.

    `flag` is [SIGTERM seen, SIGINT seen] as float32, read by the train loop; `signal` and `seconds_since()` are
    for the host. A second SIGINT quits at once, without a checkpoint."""

    def __init__(self):
        import tensorflow as tf
        with tf.device("/cpu:0"):  # a plain host variable: outside any strategy, never checkpointed
            self.flag = tf.Variable([0.0, 0.0], trainable=False, name="stop_requested")
        self.signal = None
        self._received = None  # time.monotonic() of the first signal
        self._watcher = None

    @property
    def requested(self):
        return self.signal is not None

    def seconds_since(self):
        """Seconds since the first signal arrived, or None if none did."""
        return None if self._received is None else time.monotonic() - self._received

    def _record(self, signum):
        """Called from the watcher thread as soon as a signal arrives, and from the handler between bytecodes."""
        if self.signal is not None:
            if signum == signal.SIGINT and self._sigints > 0:
                os.write(2, b"second SIGINT: quitting now, without a checkpoint\n")
                os._exit(EXIT_STATUS[signal.SIGINT])
            self._sigints += signum == signal.SIGINT
            return
        self.signal, self._received = signum, time.monotonic()
        self._sigints = int(signum == signal.SIGINT)
        self.flag.assign([float(signum == signal.SIGTERM), float(signum == signal.SIGINT)])

    def _handle(self, signum, frame):
        del frame  # the watcher has usually recorded it already; a second SIGINT it missed is counted here
        if self._watcher is None or not self._watcher.is_alive():
            self._record(signum)

    def _watch(self, read_end):
        while True:
            try:
                data = os.read(read_end, 16)
            except OSError:
                return
            if not data:
                return  # __exit__ closed the write end
            for signum in data:
                if signum in EXIT_STATUS:
                    self._record(signum)

    def __enter__(self):
        self._sigints = 0
        self._read_end, self._write_end = os.pipe()
        os.set_blocking(self._write_end, False)  # set_wakeup_fd's requirement: a signal never blocks on it
        # The watcher first, so that every signal our handler catches reaches it through the pipe.
        self._watcher = threading.Thread(target=self._watch, args=(self._read_end,), name="preemption-watcher",
                                         daemon=True)
        self._watcher.start()
        self._previous_fd = signal.set_wakeup_fd(self._write_end, warn_on_full_buffer=False)
        self._previous = {s: signal.signal(s, self._handle) for s in EXIT_STATUS}
        return self

    def __exit__(self, *exc):
        signal.set_wakeup_fd(self._previous_fd)
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        os.close(self._write_end)
        self._watcher.join(timeout=5)
        os.close(self._read_end)
        return False
