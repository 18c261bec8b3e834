"""Two local MultiWorkerMirroredStrategy workers (real train.py processes on 127.0.0.1) that lose a peer, are
signalled, or are started with a wrong TF_CONFIG: one line, a documented exit status, and an exact resume."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from support import ROOT, assert_bitwise_equal, free_port, stopped_at

STEPS = 200  # a checkpoint at 127 (one epoch of the subset at batch 32) and at 200
PEER_LOST = 75
DEADLINE_S = 60  # the bound on how long survivors may take to exit


def worker_args(data_dir, model_dir, *extra):
    return ("--dataset=cifar10", f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--depth=8",
            "--batch_size=32", f"--train_steps={STEPS}", "--log_every_steps=10", "--steps_per_loop=5",
            "--bn_momentum=0.9", "--validation_split=0", "--deterministic", "--strategy=multi_worker", *extra)


def tf_config(cluster, index):
    return json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})


class Workers:
    """The same command on every worker of `cluster`, each with its own TF_CONFIG."""

    def __init__(self, cluster, argv):
        self.processes = []
        for index in range(len(cluster)):
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CONFIG": tf_config(cluster, index)}
            self.processes.append(subprocess.Popen([sys.executable, "train.py", *argv], cwd=ROOT, env=env,
                                                   text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        self.outputs = [None] * len(cluster)

    def signal_when(self, watched, prefix, target, how):
        """Sends `how` to worker `target` once worker `watched` prints a line starting with `prefix`; returns
        the lines `watched` printed until then and the time the signal was sent."""
        lines = []
        for line in self.processes[watched].stdout:
            lines.append(line)
            if line.startswith(prefix):
                self.processes[target].send_signal(how)
                return lines, time.monotonic()
        raise AssertionError(f"worker {watched} ended before {prefix!r}: {''.join(lines)[-2000:]}")

    def wait(self, indices, timeout=300):
        """{index: (status, stdout, stderr, time.monotonic() when it exited)} for these workers, waited for
        together."""
        results = {}

        def collect(i):
            out, err = self.processes[i].communicate(timeout=timeout)
            results[i] = (self.processes[i].returncode, out, err, time.monotonic())
        threads = [threading.Thread(target=collect, args=(i,)) for i in indices]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def kill_all(self):
        for p in self.processes:
            if p.poll() is None:
                p.kill()
                p.communicate()


def finish(cluster, argv):
    workers = Workers(cluster, argv)
    results = workers.wait(range(len(cluster)), timeout=600)
    for index, (status, out, err, _) in results.items():
        assert status == 0, f"worker {index}: {err[-3000:]}"
    return results


def assert_peer_lost(result, survivor, model_dir, sent):
    status, out, err, ended = result
    seconds = ended - sent
    last = err.strip().splitlines()[-1]
    own = model_dir if survivor == 0 else f"{model_dir}/workers/{survivor}"
    assert status == PEER_LOST, f"worker {survivor}: {status}\n{err[-3000:]}"
    assert seconds < DEADLINE_S and "Traceback" not in err
    assert last.startswith("error: lost contact with ") and "after step 1" in last
    assert f"the last checkpoint is {own}/ckpt-127" in last and "relaunch every worker with the same command" in last
    return seconds


def test_lost_and_signalled_workers_exit_in_one_line_and_the_relaunch_resumes_bitwise(cifar_subset_dir,
                                                                                        tmp_path):
    cluster = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    reference, model_dir = tmp_path / "reference", tmp_path / "run"
    finish(cluster, worker_args(cifar_subset_dir, reference))
    argv = worker_args(cifar_subset_dir, model_dir)
    exit_seconds = {}
    # Each case: (worker watched, worker hit, signal); every relaunch resumes from ckpt-127.
    for case, (watched, target, how) in enumerate(((0, 1, signal.SIGKILL), (1, 0, signal.SIGKILL),
                                                   (0, 1, signal.SIGSTOP))):
        workers = Workers(cluster, argv)
        try:
            lines, sent = workers.signal_when(watched, "step 140/", target, how)
            own = model_dir if watched == 0 else model_dir / "workers" / str(watched)
            assert case == 0 or f"resuming from {own}/ckpt-127 at step 127\n" in lines
            survivor = 1 - target
            exit_seconds[f"{how.name} worker {target}"] = round(assert_peer_lost(
                workers.wait([survivor])[survivor], survivor, model_dir, sent), 1)
        finally:
            workers.kill_all()  # the SIGSTOPped one
    print(f"survivors exited after: {exit_seconds}")
    # SIGTERM to worker 1 only: both stop after the same step, with checkpoints, and exit 143.
    workers = Workers(cluster, argv)
    workers.signal_when(0, "step 150/", 1, signal.SIGTERM)
    results = workers.wait([0, 1])
    stopped = [stopped_at(out)[0] for _, out, _, _ in results.values()]
    assert [r[0] for r in results.values()] == [143, 143] and stopped[0] == stopped[1], results
    relaunch = finish(cluster, argv)
    assert f"resuming from {model_dir}/ckpt-{stopped[0]} at step {stopped[0]}" in relaunch[0][1]
    assert_bitwise_equal(f"{reference}/ckpt-{STEPS}", f"{model_dir}/ckpt-{STEPS}")
    assert_bitwise_equal(f"{reference}/workers/1/ckpt-{STEPS}", f"{model_dir}/workers/1/ckpt-{STEPS}")


def test_tf_config_mistakes_get_one_line_each(cifar_subset_dir, tmp_path):
    port, busy = free_port(), socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    cases = {
        "bad json": ("{'cluster': ", "TF_CONFIG is not valid"),
        "index": (tf_config([f"127.0.0.1:{port}"], 3), "TF_CONFIG task index 3 is outside its cluster's 1 worker"),
        "port in use": (tf_config([f"127.0.0.1:{busy.getsockname()[1]}", f"127.0.0.1:{port}"], 0),
                        f"port {busy.getsockname()[1]} of this task"),
        "never joins": (tf_config([f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}"], 0),
                        "did not start within 3 s (--worker_join_timeout)"),
    }
    started = time.monotonic()
    processes = {name: subprocess.Popen(
        [sys.executable, "train.py", *worker_args(cifar_subset_dir, tmp_path / name.replace(" ", "_"),
                                                  "--worker_join_timeout=3")],
        cwd=ROOT, env={**os.environ, "TF_CONFIG": config}, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE) for name, (config, _) in cases.items()}
    try:
        for name, process in processes.items():
            _, err = process.communicate(timeout=120)
            last = err.strip().splitlines()[-1]
            assert process.returncode == 1 and "Traceback" not in err, f"{name}: {err[-2000:]}"
            assert last.startswith("error: ") and cases[name][1] in last, f"{name}: {last}"
    finally:
        busy.close()
    assert time.monotonic() - started < 100  # the wait for a missing worker is bounded
