"""Failures in the middle of a run, each turned into one line that says what to do: a lost peer worker, a full
disk, a damaged dataset file."""
import errno
import re

import tensorflow as tf

from data import integrity
from training.errors import TrainingError

# sysexits' EX_TEMPFAIL ("temporary failure, retry"): distinct from 1 (an error rerunning won't fix) and from
# 128 + a signal, so a scheduler can tell "restart every worker" from both.
PEER_LOST_STATUS = 75

# How MultiWorkerMirroredStrategy's collectives fail when the coordination service's heartbeat (10 s) misses a
# task, whether it died, was stopped (SIGSTOP) or became unreachable; or the error reached us from a peer.
PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError,
               tf.errors.CancelledError, tf.errors.InternalError)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_TASK = re.compile(r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)")


class PeerLost(Exception):
    """A worker of a multi-worker run was lost; `status` is the process exit status to use."""
    status = PEER_LOST_STATUS


def is_disk_full(error):
    if isinstance(error, OSError):
        return error.errno in _DISK_FULL
    message = getattr(error, "message", "")
    return isinstance(error, tf.errors.OpError) and any(
        text in message for text in ("No space left on device", "Disk quota exceeded"))


class Guard:
    """Around the training loop: re-raises these failures as one-line errors naming the step (the last one
    finished, read through `step()`) and the last checkpoint (`checkpoint()`)."""

    def __init__(self, multi_worker, info, data_dir, step, checkpoint):
        self.multi_worker, self.info, self.data_dir = multi_worker, info, data_dir
        self.step, self.checkpoint = step, checkpoint

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        replacement = self.explain(error) if error is not None else None
        if replacement is None:
            return False
        raise replacement from None

    def explain(self, error):
        """The one-line exception for `error`, or None to let it through unchanged."""
        where = f"after step {self.step()}; the last checkpoint is {self.checkpoint() or 'none yet'}"
        if is_disk_full(error):
            return TrainingError(f"the disk is full ({_first_line(error)}) {where}, intact; free some space and "
                                 "run the same command to resume")
        if isinstance(error, tf.errors.DataLossError) and not self.info.name.startswith("folder:"):
            return integrity.damaged(self.info, self.data_dir, error)
        if self.multi_worker and isinstance(error, PEER_ERRORS):
            return PeerLost(f"{_lost_peer(error)} {where}; relaunch every worker with the same command "
                            f"(exit status {PEER_LOST_STATUS})")
        if isinstance(error, OSError):
            return TrainingError(f"can't write {error.filename or 'a file of the run'}: {error.strerror} {where}; "
                                 "fix that and run the same command to resume")
        return None


def _lost_peer(error):
    """"lost contact with /job:worker/task:1 (it stopped sending heartbeats...)" from TensorFlow's message."""
    message = getattr(error, "message", str(error))
    cause = message.split("Collective ops is aborted by:", 1)[-1].split("The error could be from")[0]
    tasks = sorted({f"/job:{job}/task:{task}" for job, task in _TASK.findall(cause)})
    if "stopped sending heartbeats" in cause:
        why = "it stopped sending heartbeats: it died, is stopped or is unreachable"
    elif "CoordinationService/Heartbeat" in cause:  # the service runs in the chief: it stopped answering
        tasks, why = tasks or ["the chief"], "it stopped answering heartbeats: it died, is stopped or is unreachable"
    else:
        why = next((line.strip() for line in cause.splitlines() if line.strip()), type(error).__name__)[:200]
    return f"lost contact with {', '.join(tasks) or 'a peer worker'} ({why})"


def _first_line(error):
    if isinstance(error, OSError):
        return f"{error.filename}: {error.strerror}" if error.filename else str(error.strerror or error)
    message = getattr(error, "message", str(error)).strip()
    line = next((line for line in message.splitlines() if line.strip()), type(error).__name__)
    return re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", line).split(" [Op:")[0][:300]
