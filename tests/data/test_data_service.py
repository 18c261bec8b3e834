"""--data_service on a real tf.data service: a dispatcher and two workers started as `python -m data.service`
subprocesses on 127.0.0.1. The batches it serves are the local stream's, each once; a training run reads them,
stops on SIGTERM and resumes, survives one worker killed with SIGKILL mid-run, and evaluates; the servers exit 0
on SIGTERM; bad addresses and
--deterministic are one-line errors, and a dispatcher that isn't there is an error within the bound."""
import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest

import data
import flags
from data import service
from support import ENV, ROOT, free_port, train_args, train_flags


class Servers:
    """The dispatcher and its workers, each a subprocess whose output goes to a file."""

    def __init__(self, directory, workers=2):
        self.directory, self.processes, self.logs = directory, [], []
        port = free_port()
        self.address = f"grpc://127.0.0.1:{port}"
        self._start("dispatcher", f"--port={port}")
        for _ in range(workers):
            own = free_port()
            self._start("worker", f"--dispatcher=127.0.0.1:{port}", f"--port={own}",
                        f"--worker_address=127.0.0.1:{own}")
        for log in self.logs:
            self._wait_for(log, " up on port ")

    def _start(self, role, *args):
        log = os.path.join(self.directory, f"{role}-{len(self.processes)}.log")
        with open(log, "w") as out:
            self.processes.append(subprocess.Popen([sys.executable, "-m", "data.service", role, *args], cwd=ROOT,
                                                   env=ENV, stdout=out, stderr=subprocess.STDOUT))
        self.logs.append(log)

    @staticmethod
    def _wait_for(log, text, timeout=90):
        deadline = time.monotonic() + timeout
        while text not in open(log).read():
            assert time.monotonic() < deadline, f"{log}: no '{text}' within {timeout} s:\n{open(log).read()}"
            time.sleep(0.2)

    def output(self, index):
        return open(self.logs[index]).read()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    servers = Servers(str(tmp_path_factory.mktemp("service")))
    yield servers
    for process in servers.processes:
        if process.poll() is None:
            process.terminate()
    for process in servers.processes:
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """folder:/path of JPEG crops (quality 90, 120-200 px) of a real photograph (matplotlib's sample
    grace_hopper.jpg, 512x600), 2 classes (its top and bottom halves): 12 in train/<class>/, 1 in test/<class>/."""
    import numpy as np
    from matplotlib import cbook
    from PIL import Image
    root = tmp_path_factory.mktemp("photos")
    photo = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    rng = np.random.default_rng(0)
    for label, half in (("top", photo[:300]), ("bottom", photo[300:])):
        for split, count in (("train", 12), ("test", 1)):
            os.makedirs(root / split / label)
            for k in range(count):
                size = int(rng.integers(120, 200))
                y, x = (int(rng.integers(0, half.shape[i] - size)) for i in (0, 1))
                Image.fromarray(half[y:y + size, x:x + size]).save(root / split / label / f"{k}.jpg", quality=90)
    return f"folder:{root}"


def batch_key(batch):
    images, labels = batch
    return hashlib.sha1(images.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()


@pytest.mark.parametrize("source", ["cifar10", "photos"])
def test_the_service_serves_the_local_stream_each_batch_once(servers, cifar_subset_dir, photo_folder, source):
    # CIFAR: images held in memory, inside the pipeline the workers get; photos: JPEG files the workers read and
    # decode themselves, at 64 px. 127 and 2 steps per epoch: the stream crosses epochs, each its own permutation.
    # The pixels, as train.py takes them; the service keeps order, the local stream is asked to.
    name, batch, start = ("cifar10", 32, 120) if source == "cifar10" else (photo_folder, 8, 3)
    info = data.get_info(name, cifar_subset_dir, image_size=64)
    make = lambda **kw: data.make_train_dataset(info, data_dir=cifar_subset_dir, global_batch_size=batch,  # noqa
                                                seed=3, start_step=start, pixels=True, **kw)
    step_of = {batch_key(b): start + i for i, b in enumerate(make(deterministic=True).take(60))}
    served = iter(make(service=servers.address))
    steps = [step_of.get(batch_key(next(served))) for _ in range(40)]
    # Every batch is bit-identical to one of the local stream's, none twice, and the first 30 steps are all there
    # (a batch arrives a few places early or late, as the two workers finish them).
    assert None not in steps and len(set(steps)) == 40
    assert max(steps) < start + 40 + 8 and len(set(range(start, start + 30)) - set(steps)) == 0, steps


def test_a_second_server_on_a_port_in_use_is_a_one_line_error(servers):
    port = servers.address.rsplit(":", 1)[1]
    result = subprocess.run([sys.executable, "-m", "data.service", "dispatcher", f"--port={port}"], cwd=ROOT,
                            env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (f"error: port {port} is in use by another process (Address "
                                                     "already in use); stop it or choose another --port")


def test_training_through_the_service_resumes_survives_a_killed_worker_and_evaluates(servers, cifar_subset_dir,
                                                                                       tmp_path):
    argv = [sys.executable, "train.py", *train_args(cifar_subset_dir, str(tmp_path / "run"), "--train_steps=100",
            "--log_every_steps=10", "--steps_per_loop=5", "--precise_bn_examples=256",
            f"--data_service={servers.address}")]

    def train(at_step, act):
        run = subprocess.Popen(argv, cwd=ROOT, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines = []
        for line in run.stdout:
            lines.append(line)
            if line.startswith(f"step {at_step}/"):
                act(run)
                break
        out, err = run.communicate(timeout=300)
        return run.returncode, "".join(lines) + out, err

    # Stopped by SIGTERM: a checkpoint, 143; the same command resumes there in a job of its own.
    status, out, err = train(20, lambda run: run.send_signal(signal.SIGTERM))
    assert status == 143 and "stopped by SIGTERM at step" in out, out + err[-3000:]
    assert "training batches from the tf.data service at " + servers.address in out
    # Worker 1 killed with 60 steps to go: more than the batches the client and the survivor hold ahead, so the
    # survivor serves on after the kill.
    status, out, err = train(40, lambda run: servers.processes[1].send_signal(signal.SIGKILL))
    assert status == 0, out + err[-3000:]
    assert servers.processes[1].wait(timeout=10) == -signal.SIGKILL
    assert "resuming from " in out
    final = [line for line in out.splitlines() if line.startswith("final: step 100")]
    assert final and "test top-1" in final[0], out
    # The other worker and the dispatcher stop cleanly on SIGTERM.
    for index in (2, 0):
        servers.processes[index].send_signal(signal.SIGTERM)
        assert servers.processes[index].wait(timeout=30) == 0
    assert "tf.data service worker stopped by SIGTERM" in servers.output(2)
    assert "tf.data service dispatcher stopped by SIGTERM" in servers.output(0)


@pytest.fixture(scope="module")
def parse(cifar_subset_dir):
    with train_flags(cifar_subset_dir, "--depth=8") as parse:
        yield lambda *argv: parse(*argv)[0]


@pytest.mark.parametrize("argv,message", [
    (("--data_service=dispatcher:5050",), "it must start with grpc://"),
    (("--data_service=grpc://dispatcher",), "it must be grpc://HOST:PORT"),
    (("--data_service=grpc://dispatcher:99999",), "it must be grpc://HOST:PORT"),
    (("--data_service=grpc://dispatcher:5050", "--deterministic"), "--deterministic can't hold with --data_service"),
])
def test_bad_service_flags_are_one_line_errors(parse, argv, message):
    with pytest.raises(flags.ConfigError, match=message) as error:
        parse(*argv)
    assert "\n" not in str(error.value)


def test_a_dispatcher_that_is_not_there_is_an_error_within_the_bound():
    import tensorflow as tf
    address = f"grpc://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(data.DataError, match=r"no tf.data service dispatcher answers at .* start one there "
                                             r"\(python -m data.service dispatcher --port=\d+\)"):
        service.distribute(tf.data.Dataset.range(4), address, timeout=2)
    assert time.monotonic() - started < 10
    assert service.parse_address("grpc://[::1]:5050") == ("::1", 5050)


def test_the_services_source_is_the_same_order_in_batch_sized_splits():
    from data import pipeline
    plain = pipeline._addressable_order(50, 40, 2, 1, skip=24, seed=7)
    chunked = pipeline._addressable_order(50, 40, 2, 1, skip=24, seed=7, chunk=8)
    assert [tuple(map(int, e)) for e in chunked.take(100)] == [tuple(map(int, e)) for e in plain.take(100)]


def test_a_streamed_split_is_refused_in_one_line(monkeypatch):
    import tensorflow as tf
    from data import pipeline
    from data.datasets import Split
    encoded = tf.stack([tf.io.encode_jpeg(tf.fill([20, 30, 3], tf.constant(i, tf.uint8))) for i in range(8)])
    monkeypatch.setattr(pipeline, "load_split", lambda *args, **kwargs: Split(8, tf.data.Dataset.from_tensor_slices(
        (encoded, tf.range(8, dtype=tf.int32)))))  # readable only in order, like a large tfds split
    info = data.DatasetInfo(name="imagenet2012", num_classes=8, image_size=16, small_images=False, num_train=8,
                            num_eval=8, train_split="train", eval_split="validation",
                            class_names=tuple(map(str, range(8))), mean=(0.0,) * 3, std=(1.0,) * 3)
    with pytest.raises(data.DataError, match="can't serve imagenet2012: its training split is streamed") as error:
        data.make_train_dataset(info, global_batch_size=4, service="grpc://127.0.0.1:1")
    assert "\n" not in str(error.value)
