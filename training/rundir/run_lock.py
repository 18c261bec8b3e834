"""One writer per run: an exclusive flock on <model_dir>/LOCK, held by the writing process for its whole life.

The kernel drops a flock when its process dies (kill -9, OOM, reboot), so a lock is never stale; the file's
content (pid, host, start time) only says who holds it while it is held. Readers (eval.py, predict.py, export.py,
TensorBoard) never take it."""
import datetime
import errno
import fcntl
import json
import os
import re
import socket

LOCK_FILE = "LOCK"
# Docker names a container's host after its ID: 12 hex digits (or all 64).
CONTAINER_ID = re.compile(r"[0-9a-f]{12}(?:[0-9a-f]{52})?")
# flock fails with these where the filesystem has no locks (some NFS and FUSE mounts); the run then goes on unlocked.
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


class RunLocked(Exception):
    """Another live process writes this run directory."""


class Lock:
    """Holds the lock until release() or the end of the process; a no-op where the filesystem can't lock."""

    def __init__(self, directory, out=print):
        self.path = os.path.join(directory, LOCK_FILE)
        self.fd = None
        if "://" in directory:  # gs://, s3://, hdfs://: no flock; TensorFlow writes there through its own clients
            out(f"warning: can't lock {directory} (not a local filesystem): a second train.py on it would not be "
                "refused; see README 'Failure modes'")
            return
        os.makedirs(directory, exist_ok=True)
        # Opened without truncating: a refused second writer must not change the holder's record.
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(self.fd)
            os.close(self.fd)
            self.fd = None
            raise RunLocked(_refusal(directory, holder)) from None
        except OSError as e:
            if e.errno not in _NO_LOCKS:
                raise
            os.close(self.fd)
            self.fd = None
            out(f"warning: the filesystem of {directory} can't lock files ({e.strerror}): a second train.py on it "
                "would not be refused; see README 'Failure modes'")
            return
        _write(self.fd)

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def in_container():
    """True inside a Docker, Podman or Kubernetes container."""
    if os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv") or "KUBERNETES_SERVICE_HOST" in os.environ:
        return True
    try:
        with open("/proc/1/cgroup") as f:  # cgroup v1 names the runtime; v2 shows only "0::/"
            return any(name in f.read() for name in ("docker", "kubepods", "containerd", "libpod"))
    except OSError:
        return False


def _write(fd):
    record = {"pid": os.getpid(), "host": socket.gethostname(), "container": in_container(),
              "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)


def _read(fd):
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except ValueError:
        return {}  # the holder is between truncating and writing its record


def _refusal(directory, holder):
    pid, host = holder.get("pid", "?"), holder.get("host", "?")
    container = holder.get("container", bool(CONTAINER_ID.fullmatch(str(host))))  # older records: by the name
    if host == socket.gethostname() and pid != 1:
        who, stop = f"pid {pid} on this machine", f"stop it (kill {pid})"
    elif container:  # its PID 1 is the container's main process: `kill 1` in here would signal our own init
        who, stop = f"pid {pid} in container {host}", f"stop that container (docker stop {host}; a Kubernetes pod: " \
            "kubectl delete pod)"
    else:
        who, stop = f"pid {pid} on host {host}", f"stop it there (kill {pid} on {host})"
    return (f"--model_dir={directory} is being written by another train.py ({who}, started "
            f"{holder.get('started', '?')}); wait for it to finish, or {stop} and run the same command again to "
            "resume, or use another --model_dir")
