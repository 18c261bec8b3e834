"""tf.data service: training batches read through a dispatcher, and the servers themselves, one command each.

    python -m data.service dispatcher --port=5050
    python -m data.service worker --dispatcher=HOST:5050 --port=5051 --worker_address=THIS_HOST:5051

Each server prints one line when it is up and runs until SIGTERM or SIGINT (also as a container's PID 1). The
workers run the training pipeline itself, so they read the dataset's files at the paths the trainer names.
"""
import os
import re
import signal
import socket
import sys
import threading
import time
from typing import Optional

import tensorflow as tf

from console import cuda_noise
from data.info import DataError

SCHEME = "grpc"
# How long a trainer tries to reach the dispatcher before it gives up: a dispatcher started in the same minute
# (a job's pods, a shell loop) is found; a wrong address is an error within this, not tf.data's silent retries.
CONNECT_TIMEOUT_S = 60.0
_SERVING = []  # the server of `python -m data.service`, never destroyed (see serve)
_ADDRESS = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9.\-]*):(?P<port>\d{1,5})$")


def parse_address(address: str) -> tuple:
    """(host, port) of a dispatcher address grpc://HOST:PORT; raises ValueError saying what it must be."""
    scheme, sep, rest = address.partition("://")
    if not sep or scheme != SCHEME:
        raise ValueError(f"it must start with {SCHEME}://, e.g. grpc://dispatcher:5050")
    match = _ADDRESS.match(rest)
    if not match or not 0 < int(match["port"]) < 65536:
        raise ValueError(f"it must be {SCHEME}://HOST:PORT with a port of 1-65535, e.g. grpc://dispatcher:5050")
    return match["host"].strip("[]"), int(match["port"])


def distribute(dataset: tf.data.Dataset, address: str, timeout: float = CONNECT_TIMEOUT_S) -> tf.data.Dataset:
    """`dataset` produced by the workers of the dispatcher at `address`, sharded dynamically: the dispatcher hands
    each split of the dataset's source (a Dataset.range) to one worker, so each is produced at most once (a
    worker that dies loses the splits it held). An anonymous job: a restarted trainer never joins an old one."""
    wait_for(address, timeout)
    return dataset.apply(tf.data.experimental.service.distribute(
        processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC, service=address))


def wait_for(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Returns once a TCP connection to the dispatcher at `address` opens; raises DataError after `timeout`
    seconds. tf.data itself kept retrying inside distribute(), without a word, for the 150 s we waited."""
    host, port = parse_address(address)
    deadline = time.monotonic() + timeout
    while True:
        error = _connect(host, port, min(5.0, timeout))
        if error is None:
            return
        if time.monotonic() >= deadline:
            raise DataError(f"no tf.data service dispatcher answers at {address} ({error}, for {timeout:.0f} s); "
                            f"start one there (python -m data.service dispatcher --port={port}) or fix the address")
        time.sleep(1.0)


def _connect(host, port, timeout):
    """None if a TCP connection to host:port opens within `timeout` seconds, else why not. In a daemon thread:
    name resolution ignores socket timeouts and can hang far longer on a machine without network."""
    result = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as e:
            result.append(e.strerror or type(e).__name__)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0] if result else "no answer"


def serve(role: str, port: int, dispatcher: Optional[str] = None, worker_address: Optional[str] = None,
          out=print):
    """Runs a dispatcher or a worker on `port` until SIGTERM or SIGINT, then ends the process with status 0.
    Raises OSError if the port is in use."""
    _check_free(port)
    # Handlers of our own, not SIG_DFL, which a container's PID 1 would ignore; whichever thread the signal lands
    # on, its byte on the wakeup pipe wakes the read at the end.
    signals = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    for s in signals:
        signal.signal(s, lambda signum, frame: None)
    service = tf.data.experimental.service
    if role == "dispatcher":
        server = service.DispatchServer(service.DispatcherConfig(port=port))
        out(f"tf.data service dispatcher up on port {port}: train with --data_service={SCHEME}://"
            f"{socket.gethostname()}:{port} (or the address its workers and trainer reach it at)")
    else:
        reach = worker_address or f"{socket.gethostname()}:{port}"
        server = service.WorkerServer(service.WorkerConfig(dispatcher_address=dispatcher, port=port,
                                                           worker_address=reach))
        out(f"tf.data service worker up on port {port}, reached at {reach}, serving the dispatcher at "
            f"{dispatcher}")
    received = b""
    while not any(b in signals for b in received):
        received = os.read(read_end, 16)
    name = signals[next(b for b in received if b in signals)]
    try:
        out(f"tf.data service {role} stopped by {name}")
    finally:
        # Without destroying `server`: a worker's destructor waits for the tasks of jobs whose trainer is gone
        # (it hung past 30 s), and a worker's unfinished splits are lost either way.
        _SERVING.append(server)
        sys.stdout.flush()
        os._exit(0)


def _check_free(port):
    """Raises OSError if another process listens on `port`: gRPC binds with SO_REUSEPORT, so a second server on a
    port in use would start without a word and take some of the first one's connections."""
    with socket.socket(socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET) as probe:
        probe.bind(("", port))


def _check_port(value, name):
    if not 0 < value < 65536:
        raise ValueError(f"--{name}={value} is not a port; use 1-65535")


def main(argv):
    from absl import flags
    cuda_noise.import_tensorflow()  # the devices are probed: the CUDA-line filter ends
    f = flags.FLAGS
    if len(argv) != 2 or argv[1] not in ("dispatcher", "worker"):
        sys.exit("error: usage: python -m data.service dispatcher --port=5050, or python -m data.service worker "
                 "--dispatcher=HOST:5050 --port=5051 [--worker_address=THIS_HOST:5051]")
    role = argv[1]
    try:
        _check_port(f.port, "port")
        if role == "worker":
            if not f.dispatcher:
                raise ValueError("a worker needs --dispatcher=HOST:PORT, the dispatcher's address")
            try:
                parse_address(f"{SCHEME}://{f.dispatcher.removeprefix(SCHEME + '://')}")
            except ValueError:
                raise ValueError(f"--dispatcher={f.dispatcher} must be HOST:PORT, the dispatcher's address, "
                                 "e.g. dispatcher:5050") from None
        if f.worker_address and not _ADDRESS.match(f.worker_address):
            raise ValueError(f"--worker_address={f.worker_address} must be HOST:PORT, the address the dispatcher "
                             "and the trainer reach this worker at")
    except ValueError as e:
        sys.exit(f"error: {e}")
    dispatcher = f.dispatcher.removeprefix(SCHEME + "://") if f.dispatcher else None
    try:
        serve(role, f.port, dispatcher, f.worker_address, out=lambda line: print(line, flush=True))
    except OSError as e:
        sys.exit(f"error: port {f.port} is in use by another process ({e.strerror}); stop it or choose another "
                 "--port")
    except (tf.errors.OpError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        sys.exit(f"error: the tf.data service {role} could not start on port {f.port}: {first}; free the port or "
                 "choose another --port")


if __name__ == "__main__":
    from absl import flags as absl_flags
    from console import logs
    absl_flags.DEFINE_integer("port", 5050, "Port to serve on (a worker's usually another, e.g. 5051).")
    absl_flags.DEFINE_string("dispatcher", None, "Worker: the dispatcher's HOST:PORT.")
    absl_flags.DEFINE_string("worker_address", None, "Worker: the HOST:PORT the dispatcher and the trainer reach "
                             "this worker at (default: this machine's host name and --port; in a container, the "
                             "host's name and the published port).")
    logs.run(main)
