"""TF_CONFIG of a multi-worker run, checked and with every worker waited for (bounded) before TensorFlow joins.

TensorFlow itself answers a malformed TF_CONFIG with a traceback, a port in use with "Could not start gRPC server",
and a worker that never starts by waiting forever inside a C++ call that holds the GIL (no Python watchdog can
run then). So each worker first holds its own port with a plain socket and waits until every other worker's port
answers; only then does it hand the port to TensorFlow."""
import dataclasses
import json
import os
import socket
import time

PROBE_INTERVAL_S = 0.5


class ClusterError(ValueError):
    """A TF_CONFIG mistake or a worker that did not join, with what to do about it."""


@dataclasses.dataclass(frozen=True)
class Task:
    kind: str          # "chief" or "worker"
    index: int
    addresses: tuple   # every task's "host:port", the chief first if there is one
    me: int            # position of this task in addresses
    has_chief: bool    # the cluster has a "chief" job
    source: str = "TF_CONFIG"  # what described the cluster: "TF_CONFIG" or "Slurm"

    @property
    def is_chief(self):
        """The writer of the run: the chief task, else worker 0 (as MultiWorkerMirroredStrategy decides)."""
        return self.kind == "chief" or (self.index == 0 and not self.has_chief)


def read_task(environ=os.environ):
    """This process's task in TF_CONFIG; raises ClusterError naming what is wrong with it."""
    text = environ.get("TF_CONFIG")
    if not text:
        raise ClusterError("--strategy=multi_worker needs TF_CONFIG describing the cluster; see README "
                           "'Multi-worker'")
    try:
        tf_config = json.loads(text)
        cluster, task = tf_config["cluster"], tf_config["task"]
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise ClusterError(f"TF_CONFIG is not valid ({type(e).__name__}: {e}); it must look like "
                           '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", '
                           '"index": 0}}') from None
    jobs = {k: cluster.get(k) or [] for k in ("chief", "worker")}
    if kind not in jobs:
        raise ClusterError(f"TF_CONFIG task type {kind!r} is not 'chief' or 'worker'")
    if not 0 <= index < len(jobs[kind]):
        raise ClusterError(f"TF_CONFIG task index {index} is outside its cluster's {len(jobs[kind])} "
                           f"{kind} address(es); use 0 to {len(jobs[kind]) - 1}")
    addresses = tuple(jobs["chief"]) + tuple(jobs["worker"])
    for address in addresses:
        if not isinstance(address, str) or not address.rpartition(":")[2].isdigit():
            raise ClusterError(f"TF_CONFIG address {address!r} is not host:port")
    me = index if kind == "chief" else len(jobs["chief"]) + index
    return Task(kind, index, addresses, me, bool(jobs["chief"]))


def wait_for_workers(task, timeout_s, out=print):
    """Holds this task's port and waits until every other task's port answers. Raises ClusterError if the port
    is in use or a task has not answered within timeout_s."""
    port = int(task.addresses[task.me].rpartition(":")[2])
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Like gRPC: a relaunch on the same port must not trip over the previous process's TIME_WAIT connections.
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        holder.bind(("", port))
    except OSError as e:
        holder.close()
        fix = ("give this task another port in every worker's TF_CONFIG" if task.source == "TF_CONFIG" else
               "submit the job again (Slurm jobs take ports 20000 + 16 * (job id mod 750) + local task)")
        raise ClusterError(f"port {port} of this task ({task.kind} {task.index}, {task.addresses[task.me]} from "
                           f"{task.source}) is in use by another process ({e.strerror}); stop it or {fix}") from None
    try:
        holder.listen(64)
        holder.setblocking(False)
        missing = [a for i, a in enumerate(task.addresses) if i != task.me]
        if missing:
            out(f"waiting up to {timeout_s:.0f} s for the other {len(missing)} task(s) of {task.source} to start")
        deadline = time.monotonic() + timeout_s
        while missing:
            missing = [a for a in missing if not _answers(a)]
            if missing and time.monotonic() > deadline:
                fix = ("start every worker with the same command and its own TF_CONFIG task index, or fix the "
                       "address" if task.source == "TF_CONFIG" else "check that every task of the step started "
                       "(the job's output) and that the nodes reach each other on these ports")
                raise ClusterError(f"{', '.join(missing)} of {task.source} did not start within {timeout_s:.0f} s "
                                   f"(--worker_join_timeout); {fix}")
            if missing:
                time.sleep(PROBE_INTERVAL_S)
            _drain(holder)  # the other tasks' probes, so the backlog never fills and refuses them
    finally:
        holder.close()  # TensorFlow's gRPC server binds the port next


def _drain(listener):
    while True:
        try:
            listener.accept()[0].close()
        except BlockingIOError:
            return


def _answers(address):
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=1.0).close()
        return True
    except OSError:
        return False
