"""train.py under MirroredStrategy on two logical CPUs, under MultiWorkerMirroredStrategy in two local
processes, and with float16 + XLA."""
import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from support import ROOT, free_port, run, tensors, train_args


def checkpoint_values(prefix):
    """Every saved variable: weights, batch-norm statistics, optimizer slots and iterations, step."""
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_mirrored_on_two_logical_cpus(cifar_subset_dir, tmp_path):
    out = run("train.py", *train_args(cifar_subset_dir, tmp_path, "--strategy=mirrored", "--cpu_devices=2",
                                      "--train_steps=6", "--log_every_steps=3", "--steps_per_loop=3")).stdout
    assert "MirroredStrategy with 2 replica(s)" in out
    assert "(1017 test examples in " in out and "final: step 6" in out


def test_multi_worker_processes_end_with_identical_weights(cifar_subset_dir, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(2)]}
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        # A validation split evaluated at both steps: each worker keeps its own best/ and restores it at the end.
        args = train_args(cifar_subset_dir, tmp_path, "--strategy=multi_worker", "--train_steps=2",
                          "--log_every_steps=1", "--steps_per_loop=1", "--validation_split=0.1",
                          "--epochs_between_evals=0.009")
        workers.append(subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outputs = [w.communicate(timeout=600) for w in workers]
    for index, (w, (out, err)) in enumerate(zip(workers, outputs)):
        assert w.returncode == 0, f"worker {index}: {err[-3000:]}"
    assert "MultiWorkerMirroredStrategy with 2 replica(s)" in outputs[0][0]
    finals = [out.strip().splitlines()[-1].split("  wall time")[0] for out, _ in outputs]
    assert finals[0] == finals[1] and "best on validation: step " in finals[0], finals
    assert os.path.exists(os.path.join(tmp_path, "workers", "1", "best", "best.json"))
    chief = checkpoint_values(os.path.join(tmp_path, "ckpt-2"))
    other = checkpoint_values(os.path.join(tmp_path, "workers", "1", "ckpt-2"))
    assert chief.keys() == other.keys() and len(chief) > 60
    for name in chief:
        np.testing.assert_allclose(chief[name], other[name], rtol=1e-6, atol=1e-7, err_msg=name)
    # Only the chief writes the run's summaries and config.
    assert os.path.exists(os.path.join(tmp_path, "config.json"))
    assert not os.path.exists(os.path.join(tmp_path, "workers", "1", "train"))


def test_float16_with_xla_trains(cifar_subset_dir, tmp_path):
    # float16 with dynamic loss scaling and the XLA-compiled step: finite, falling loss over 60 steps of real data.
    out = run("train.py", *train_args(cifar_subset_dir, tmp_path, "--dtype=float16", "--xla", "--train_steps=60",
                                      "--log_every_steps=20")).stdout
    losses = [float(v) for _, v in tensors(os.path.join(tmp_path, "train"), "loss")]
    assert len(losses) == 3 and all(np.isfinite(losses)) and losses[-1] < losses[0], out
