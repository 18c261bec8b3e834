"""SIGTERM / SIGINT during training: finish the steps in flight, checkpoint, exit with a documented status.

The handler only sets a flag; the loop reads it between tf.function calls and all workers agree on it through an
all-reduce inside the train loop, so every replica and worker stops after the same step."""
import signal

# Exit statuses of a run stopped by a signal after writing its checkpoint: the shell's 128 + signal number, so
# schedulers treat the run as terminated (and requeue it), and re-running the same command resumes it.
EXIT_STATUS = {signal.SIGTERM: 143, signal.SIGINT: 130}


def exit_status(votes):
    """The exit status of every worker of a run stopped by `votes` (summed Preemption.vote): 143 if any worker saw
    SIGTERM, else 130, so that a worker stopped because another one was signalled exits like it."""
    return EXIT_STATUS[signal.SIGTERM] if votes[0] > 0 else EXIT_STATUS[signal.SIGINT]


class Preemption:
    """Context manager that turns SIGTERM/SIGINT into a stop request instead of an abrupt exit."""

    def __init__(self):
        self.signal = None

    @property
    def requested(self):
        return self.signal is not None

    @property
    def vote(self):
        """This process's stop vote, [SIGTERM seen, SIGINT seen]; the train loop sums it over every replica.
        Booleans on purpose: the loop's cast to float32 then makes a new tensor per replica, where a float32 input
        would come back unchanged and MirroredStrategy would refuse to reduce it."""
        return [self.signal == signal.SIGTERM, self.signal == signal.SIGINT]

    def _handle(self, signum, frame):
        del frame
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: the user wants out now
        self.signal = signum

    def __enter__(self):
        self._previous = {s: signal.signal(s, self._handle) for s in EXIT_STATUS}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False
