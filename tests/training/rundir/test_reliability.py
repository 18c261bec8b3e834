"""Preemption, exact resume, crash safety, best checkpoints, non-finite losses, start-up checks and eval --watch:
the real train.py / eval.py as subprocesses, stopped and resumed on real checkpoint files."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import model
from conftest import SHARED_SUBSET
from support import ROOT, assert_bitwise_equal, interrupt, run, snapshot, start, stopped_at, tensors, weights
from training.rundir import checkpoints, run_dir

STEPS = 300  # checkpoints at 127 and 254 (epochs of the subset at batch 32) and at 300


def args(data_dir, model_dir, *extra):
    return ("--dataset=cifar10", f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--depth=8",
            "--batch_size=32", f"--train_steps={STEPS}", "--log_every_steps=10", "--steps_per_loop=5",
            "--validation_split=0", "--deterministic", *extra)


def logged_steps(model_dir, tag="loss", where="train"):
    return [s for s, _ in tensors(os.path.join(model_dir, where), tag)]


@pytest.fixture(scope="module")
def reference(cifar_subset_dir, tmp_path_factory):
    """The uninterrupted run every interrupted one must reproduce bit for bit."""
    model_dir = str(tmp_path_factory.mktemp("reference"))
    run("train.py", *args(cifar_subset_dir, model_dir))
    return cifar_subset_dir, model_dir


STOP_BOUND_S = 8.0  # README 'Preemption': a stop ends this long after the step in flight, at most


def test_sigterm_mid_block_stops_after_the_step_in_flight_and_the_same_command_resumes_bitwise(reference,
                                                                                                 tmp_path):
    data_dir, reference_dir = reference
    # One block of 127 steps per epoch (~4 s here): the signal lands inside a tf.function call.
    big_blocks = args(data_dir, tmp_path, "--steps_per_loop=100000", "--log_every_steps=100000")
    process = start(*big_blocks)
    for line in process.stdout:
        if line.startswith("eval at step 127"):
            break
    time.sleep(1.0)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=300)
    exit_seconds = time.monotonic() - sent
    assert process.returncode == 143, err[-2000:]
    step, after, per_step = stopped_at(out)
    print(f"SIGTERM mid-block: stopped at step {step}, exited {exit_seconds:.2f} s after the signal "
          f"(its line: {after} s; steps took {per_step:.3f} s)")
    assert 127 < step < 254 and os.path.exists(tmp_path / f"ckpt-{step}.index")  # inside the block, not at its end
    assert exit_seconds <= STOP_BOUND_S + per_step and after <= exit_seconds
    resumed = run("train.py", *big_blocks).stdout
    assert f"resuming from {tmp_path}/ckpt-{step} at step {step}" in resumed
    assert_bitwise_equal(f"{reference_dir}/ckpt-{STEPS}", f"{tmp_path}/ckpt-{STEPS}")
    assert logged_steps(tmp_path, "top_1", "eval") == logged_steps(reference_dir, "top_1", "eval")


def test_sigkill_between_checkpoints_resumes_from_the_last_one_bitwise(reference, tmp_path):
    data_dir, reference_dir = reference
    killed = start(*args(data_dir, tmp_path))
    status, _, _ = interrupt(killed, "step 160/", signal.SIGKILL)
    assert status == -signal.SIGKILL
    assert tf.train.latest_checkpoint(tmp_path).endswith("ckpt-127")
    # The killed writer's lock file stays behind with its pid; the kernel released the lock itself.
    assert json.loads((tmp_path / "LOCK").read_text())["pid"] == killed.pid
    resumed = run("train.py", *args(data_dir, tmp_path)).stdout
    assert f"resuming from {tmp_path}/ckpt-127 at step 127" in resumed
    assert_bitwise_equal(f"{reference_dir}/ckpt-{STEPS}", f"{tmp_path}/ckpt-{STEPS}")
    # The killed process had logged steps 130-160; the resumed one wrote them again, once.
    assert logged_steps(tmp_path) == logged_steps(reference_dir)
    # metrics.csv too; only the first train row after the resume averages fewer steps (128-130, not 121-130).
    resumed, uninterrupted = metrics_csv(tmp_path), metrics_csv(reference_dir)
    assert [r["step"] for r in resumed] == [r["step"] for r in uninterrupted]
    for row in (resumed, uninterrupted):
        first_after_resume = next(r for r in row if int(r["step"]) > 127 and r["train_loss"])
        del first_after_resume["train_loss"], first_after_resume["train_top_1"]
    assert resumed == uninterrupted


def metrics_csv(model_dir):
    """metrics.csv without its timing column."""
    with open(os.path.join(model_dir, "metrics.csv"), newline="") as f:
        return [{k: v for k, v in row.items() if k != "images_per_second"} for row in csv.DictReader(f)]


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(reference, tmp_path):
    data_dir, reference_dir = reference
    model_dir = tmp_path / "run"
    shutil.copytree(reference_dir, model_dir)
    os.remove(model_dir / checkpoints.DONE_FILE)
    data_file = model_dir / f"ckpt-{STEPS}.data-00000-of-00001"
    with open(data_file, "r+b") as f:
        f.truncate(os.path.getsize(data_file) // 2)
    out = run("train.py", *args(data_dir, model_dir)).stdout
    assert f"warning: {model_dir}/ckpt-{STEPS} can't be restored" in out
    assert f"resuming from {model_dir}/ckpt-254 at step 254" in out
    assert_bitwise_equal(f"{reference_dir}/ckpt-{STEPS}", f"{model_dir}/ckpt-{STEPS}")


def test_no_restorable_checkpoint_is_an_error_not_a_fresh_start(reference, tmp_path):
    data_dir, reference_dir = reference
    model_dir = tmp_path / "run"
    shutil.copytree(reference_dir, model_dir)
    for data_file in model_dir.glob("ckpt-*.data-*"):
        data_file.write_bytes(b"")
    before = snapshot(model_dir)
    result = run("train.py", *args(data_dir, model_dir), check=False)
    assert result.returncode == 1 and "none of the 3 checkpoints" in result.stderr.strip().splitlines()[-1]
    assert snapshot(model_dir) == before


def test_nan_stops_naming_the_step_and_the_last_good_checkpoint_is_finite(cifar_subset_dir, tmp_path):
    result = run("train.py", *args(cifar_subset_dir, tmp_path, "--debug_nan_at_step=140"), check=False)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and "the loss was not finite at step 140" in last and "ckpt-127" in last
    assert tf.train.latest_checkpoint(tmp_path).endswith("ckpt-127")
    assert all(np.isfinite(v).all() for v in weights(f"{tmp_path}/ckpt-127").values())


def test_nan_skip_batch_skips_that_update_only(cifar_subset_dir, tmp_path):
    out = run("train.py", *args(cifar_subset_dir, tmp_path, "--nan_policy=skip_batch", "--debug_nan_at_step=7",
                                "--train_steps=20")).stdout
    assert "skipped 1 step(s) with a non-finite loss, the first at step 7" in out
    values = weights(f"{tmp_path}/ckpt-20")
    assert all(np.isfinite(v).all() for v in values.values())
    iterations = [v for n, v in values.items()  # the optimizer's only int64 scalar
                  if n.startswith("optimizer/") and v.dtype == np.int64 and v.shape == ()]
    assert [int(i) for i in iterations] == [19]  # 20 steps, one of them skipped


def test_sigterm_under_mirrored_strategy(cifar_subset_dir, tmp_path):
    mirrored = args(cifar_subset_dir, tmp_path, "--strategy=mirrored", "--cpu_devices=2", "--train_steps=120")
    status, out, _ = interrupt(start(*mirrored), "step 30/", signal.SIGTERM)
    assert status == 143
    step, _, _ = stopped_at(out)
    resumed = run("train.py", *mirrored).stdout
    assert "MirroredStrategy with 2 replica(s)" in resumed and f"at step {step}" in resumed
    assert resumed.strip().splitlines()[-1].startswith("final: step 120")


def test_eval_watch_beside_training_evaluates_each_checkpoint_once(cifar_subset_dir, tmp_path):
    trainer = start(*args(cifar_subset_dir, tmp_path, "--deterministic=false", "--train_steps=260",
                          "--keep_best=0"))
    watcher = start(f"--model_dir={tmp_path}", "--watch", "--timeout=120", script="eval.py")
    train_out, train_err = trainer.communicate(timeout=600)
    watch_out, watch_err = watcher.communicate(timeout=300)
    assert trainer.returncode == 0, train_err[-2000:]
    assert watcher.returncode == 0, watch_err[-2000:]
    evaluated = [int(line.split(":")[0].split()[1]) for line in watch_out.splitlines() if line.startswith("step ")]
    assert evaluated == [127, 254, 260]


def unchanged_after(model_dir, *argv, script="train.py"):
    """Runs a command expected to fail; returns its last stderr line after checking model_dir is untouched."""
    before = snapshot(model_dir)
    result = run(script, *argv, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert snapshot(model_dir) == before
    return result.stderr.strip().splitlines()[-1]


def test_startup_errors_touch_nothing(reference, tmp_path):
    data_dir, reference_dir = reference
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert "can't write to --model_dir" in unchanged_after(tmp_path, *args(data_dir, not_a_dir / "run"))
    other_dataset = tmp_path / "other"
    shutil.copytree(reference_dir, other_dataset)
    config = json.loads((other_dataset / "config.json").read_text())
    config["config"]["dataset"] = "cifar100"
    (other_dataset / "config.json").write_text(json.dumps(config))
    assert "holds another run: dataset=cifar100 (asked cifar10)" in unchanged_after(
        other_dataset, *args(data_dir, other_dataset))
    assert "imagenet2012" in unchanged_after(tmp_path, *args(tmp_path / "no_data", tmp_path / "x",
                                                             "--dataset=imagenet2012"))


def test_eval_refuses_a_checkpoint_of_another_depth(reference, tmp_path):
    _, reference_dir = reference
    deeper, _ = model.create(14, num_classes=10, image_size=32)
    prefix = tf.train.Checkpoint(model=deeper).write(str(tmp_path / "depth14"))
    last = unchanged_after(reference_dir, f"--model_dir={reference_dir}", f"--checkpoint={prefix}",
                           script="eval.py")
    assert last.startswith(f"error: can't restore {prefix} into this run's model")


def test_full_disk_is_refused_before_training(tmp_path, monkeypatch):
    net, _ = model.create(50, num_classes=1000, image_size=224)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 10**7, 10**7))
    with pytest.raises(run_dir.TrainingError, match=r"has 10 MiB free but checkpoints need about 391 MiB"):
        run_dir.check_writable(str(tmp_path / "run"), net)


def lines_until(process, prefix):
    """Reads the process's stdout up to a line starting with `prefix`."""
    for line in process.stdout:
        if line.startswith(prefix):
            return
    raise AssertionError(f"ended before {prefix!r}: {process.communicate()[1][-2000:]}")


def test_a_second_writer_is_refused_and_the_first_finishes_unharmed(reference, tmp_path):
    data_dir, reference_dir = reference
    first = start(*args(data_dir, tmp_path))
    try:
        lines_until(first, "eval at step 127")
        first.send_signal(signal.SIGSTOP)  # keeps it mid-run (and holding the lock) while the others start
        second = run("train.py", *args(data_dir, tmp_path), check=False)
        last = second.stderr.strip().splitlines()[-1]
        assert second.returncode == 1 and "Traceback" not in second.stderr and "resuming" not in second.stdout
        assert last.startswith(f"error: --model_dir={tmp_path} is being written by another train.py (pid "
                               f"{first.pid} on this machine, started ") and f"kill {first.pid}" in last
        reader = run("eval.py", f"--model_dir={tmp_path}")  # readers need no lock
        assert reader.stdout.startswith("step 127: top-1 ")
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    assert_bitwise_equal(f"{reference_dir}/ckpt-{STEPS}", f"{tmp_path}/ckpt-{STEPS}")


def fill(directory, leave=0):
    """Fills the filesystem of `directory` until `leave` bytes (to a page) remain free; returns the filler."""
    filler = directory / "filler"
    with open(filler, "ab", buffering=0) as f:
        try:
            while shutil.disk_usage(directory).free > leave:
                f.write(b"\0" * min(2 ** 16, max(shutil.disk_usage(directory).free - leave, 4096)))
        except OSError:
            pass  # full
    return filler


def mount_small_disk(directory):
    """A real 8 MiB tmpfs at `directory` where mounting is permitted (root), else False."""
    directory.mkdir()
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(directory)],
                          capture_output=True).returncode == 0


def stopped_by_full_disk(process, model_dir):
    """The last stderr line of a run that must stop with a one-line error and ckpt-127 intact."""
    _, err = process.communicate(timeout=300)
    last = err.strip().splitlines()[-1]
    assert process.returncode == 1 and "Traceback" not in err, err[-3000:]
    assert f"the last checkpoint is {model_dir}/ckpt-127, intact; free some space" in last, last
    assert tf.train.latest_checkpoint(model_dir) == f"{model_dir}/ckpt-127"
    assert all(np.isfinite(v).all() for v in weights(f"{model_dir}/ckpt-127").values())  # reads back whole
    return last


def test_a_full_disk_stops_in_one_line_and_the_same_command_resumes_bitwise(reference, tmp_path, record_property):
    data_dir, reference_dir = reference
    disk = tmp_path / "disk"
    mounted = mount_small_disk(disk)
    how = "a real 8 MiB tmpfs" if mounted else "ENOSPC from /dev/full at metrics.csv's write (mount not permitted)"
    record_property("full_disk", how)
    print(f"full disk: {how}")
    model_dir = disk / "run"
    try:
        # Phase 1: the disk fills up between checkpoints; the next events or metrics.csv write hits it.
        first = start(*args(data_dir, model_dir))
        lines_until(first, "step 130/")
        if mounted:
            filler = fill(disk)
        else:
            backup = shutil.copy(model_dir / "metrics.csv", tmp_path / "metrics.csv")
            os.symlink("/dev/full", tmp_path / "full")
            os.replace(tmp_path / "full", model_dir / "metrics.csv")
        last = stopped_by_full_disk(first, model_dir)
        print(last)
        assert last.startswith("error: the disk is full (") and "No space left on device" in last
        if mounted:
            # Phase 2: room for the logs but not for the next checkpoint, which fails without leftovers.
            os.remove(filler)
            second = start(*args(data_dir, model_dir))
            lines_until(second, "step 140/")
            filler = fill(disk, leave=300 * 1024)
            last = stopped_by_full_disk(second, model_dir)
            print(last)
            assert last.startswith(f"error: can't write checkpoint {model_dir}/ckpt-254 (") and "No space" in last
            assert not list(model_dir.glob("ckpt-254*"))
            os.remove(filler)
        else:
            os.replace(backup, model_dir / "metrics.csv")
        resumed = run("train.py", *args(data_dir, model_dir)).stdout
        assert f"resuming from {model_dir}/ckpt-127 at step 127" in resumed
        assert_bitwise_equal(f"{reference_dir}/ckpt-{STEPS}", f"{model_dir}/ckpt-{STEPS}")
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)


def test_a_damaged_tfrecord_is_named_with_the_command_that_rebuilds_it(reference, tmp_path):
    data_dir, reference_dir = reference
    damaged_data, model_dir = tmp_path / "tfds", tmp_path / "run"
    shutil.copytree(data_dir, damaged_data)
    shard = next(damaged_data.glob("cifar10/*/cifar10-train.tfrecord-*"))
    with open(shard, "r+b") as f:
        f.seek(os.path.getsize(shard) // 2)
        f.write(b"\xff" * 64)
    # A run stopped at ckpt-254 that resumes on the damaged copy.
    shutil.copytree(reference_dir, model_dir)
    os.remove(model_dir / checkpoints.DONE_FILE)
    for name in model_dir.glob(f"ckpt-{STEPS}.*"):
        os.remove(name)
    # (Without timestamps CheckpointManager would list none of them.)
    tf.compat.v1.train.update_checkpoint_state(str(model_dir), f"{model_dir}/ckpt-254",
                                               [f"{model_dir}/ckpt-127", f"{model_dir}/ckpt-254"],
                                               all_model_checkpoint_timestamps=[1.0, 2.0])
    damaged = run("train.py", *args(damaged_data, model_dir), check=False)
    last = damaged.stderr.strip().splitlines()[-1]
    assert damaged.returncode == 1 and "Traceback" not in damaged.stderr
    assert last.startswith(f"error: {shard} is damaged (corrupted record at ")
    assert f"`python -m data.prepare cifar10 --archive=PATH/cifar-10-binary.tar.gz --data_dir={damaged_data}`" in last
    assert tf.train.latest_checkpoint(model_dir) == f"{model_dir}/ckpt-254"
    # Doing what the line says: delete the dataset's directory, prepare it again (from the subset), rerun.
    shutil.rmtree(last.split(" is damaged")[1].split("; delete ")[1].split(" and rebuild")[0])
    subprocess.run([sys.executable, "-m", "data.prepare", "cifar10", f"--archive={SHARED_SUBSET}",
                    f"--data_dir={damaged_data}", "--allow_unverified"], check=True, capture_output=True, cwd=ROOT)
    resumed = run("train.py", *args(damaged_data, model_dir)).stdout
    assert f"resuming from {model_dir}/ckpt-254 at step 254" in resumed
    assert_bitwise_equal(f"{reference_dir}/ckpt-{STEPS}", f"{model_dir}/ckpt-{STEPS}")
