"""train.py on a real one-node Slurm (tests/slurm_cluster.py: munged, slurmctld and slurmd on localhost): a 2-task
srun run that both tasks join and that evaluates; scripts/slurm/train.sbatch stopped by scancel --signal=TERM,
requeued and resumed; a task killed with SIGKILL; bad setups in one line. The cluster comes from Slurm's variables
through training/distribute/slurm.py, with no TF_CONFIG."""
import os
import re
import signal
import socket
import sys
import time

import pytest

import slurm_cluster
from support import ROOT

STEPS = 60
DEADLINE_S = 60  # as for TF_CONFIG workers: the survivors of a lost task exit within a minute
PEER_LOST = 75


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = slurm_cluster.missing()
    if reason:
        pytest.skip(reason)
    cluster = slurm_cluster.Cluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()


def args(data_dir, model_dir, *extra):
    return ("--dataset=cifar10", f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--depth=8",
            "--batch_size=32", f"--train_steps={STEPS}", "--log_every_steps=10", "--steps_per_loop=5",
            "--keep_best=0", "--dtype=float32", *extra)


def srun(slurm, *argv, timeout=300):
    """A 2-task step of train.py, each line labelled with its task's rank; the environment has no TF_CONFIG."""
    env = {k: v for k, v in slurm.env.items() if k != "TF_CONFIG"}
    slurm.env, saved = env, slurm.env
    try:
        return slurm.run("srun", "--ntasks=2", "--cpus-per-task=1", "--label", "--kill-on-bad-exit=0",
                         f"--chdir={ROOT}", sys.executable, "train.py", *argv, check=False, timeout=timeout)
    finally:
        slurm.env = saved


def task_lines(text, rank):
    return [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith(f"{rank}: ")]


def test_two_srun_tasks_train_one_run_and_the_chief_evaluates(slurm, cifar_subset_dir, tmp_path):
    result = srun(slurm, *args(cifar_subset_dir, tmp_path, "--train_steps=10"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    chief, other = task_lines(result.stdout, 0), task_lines(result.stdout, 1)
    for rank, lines in enumerate((chief, other)):
        started = next(line for line in lines if line.startswith("cluster from Slurm"))
        assert re.fullmatch(rf"cluster from Slurm \(job \d+, step 0\): task {rank} of 2 at localhost:\d+ on node "
                            r"localhost, no GPU", started), started
        assert any("MultiWorkerMirroredStrategy with 2 replica(s)" in line for line in lines)
        assert any(line.startswith("final: step 10 ") for line in lines)
    assert any("(1017 test examples in " in line for line in chief)  # every test image once, over both tasks
    # The chief writes the run; the other task only its own checkpoints, under workers/1.
    assert os.path.exists(tmp_path / "config.json") and os.path.exists(tmp_path / "ckpt-10.index")
    assert os.path.exists(tmp_path / "workers" / "1" / "ckpt-10.index")
    assert not os.path.exists(tmp_path / "workers" / "1" / "train")


def wait_for(path, text, job, slurm, timeout=300):
    deadline, ended = time.monotonic() + timeout, False
    while time.monotonic() < deadline:
        if os.path.exists(path) and text in open(path).read():
            return time.monotonic()
        if ended:
            break
        # One more look at the file after the job ended: its last line may have come just before.
        ended = slurm.job(job).get("JobState") in ("FAILED", "COMPLETED", "CANCELLED", "TIMEOUT")
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in {path} (job {slurm.job(job).get('JobState')}): "
                         f"{open(path).read()[-3000:] if os.path.exists(path) else ''}")


def test_sbatch_script_stops_on_scancel_term_requeues_itself_and_resumes(slurm, cifar_subset_dir, tmp_path):
    log, run = tmp_path / "job.out", tmp_path / "run"
    env = {**{k: v for k, v in slurm.env.items() if k != "TF_CONFIG"}, "PYTHON": sys.executable}
    # The script's own resources are for GPU nodes: this node has 2 CPUs and no GPU.
    submit = ["sbatch", "--parsable", "--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=0", "--gpus-per-task=0",
              "--cpus-per-task=1", f"--chdir={ROOT}", f"--output={log}",
              os.path.join(ROOT, "scripts", "slurm", "train.sbatch"), *args(cifar_subset_dir, run)]
    saved, slurm.env = slurm.env, env
    try:
        job = slurm.run(*submit).stdout.strip()
    finally:
        slurm.env = saved
    submitted = time.monotonic()
    began = wait_for(log, "0: step 10/", job, slurm)
    slurm.run("scancel", "--signal=TERM", job)
    signalled = time.monotonic()
    wait_for(log, "requeued; it resumes", job, slurm)
    stopped = time.monotonic()
    resumed = wait_for(log, "0: resuming from", job, slurm)
    wait_for(log, "ended with status 0", job, slurm)
    text = open(log).read()
    first, second = text.split("attempt 2 on localhost", 1)
    steps = set()
    for rank in (0, 1):
        line = next(line for line in task_lines(first, rank) if "at step" in line and "checkpoint" in line)
        assert re.search(r"stopped by SIGTERM at step \d+, [\d.]+ s after the signal", line), line
        steps.add(int(re.search(r"at step (\d+)", line).group(1)))
    assert len(steps) == 1 and 10 <= min(steps) < STEPS  # both tasks stopped after the same step, checkpointed
    step = steps.pop()
    assert "ended with status 143" in first and "Traceback" not in first
    # srun's own report: one line for both tasks, or one each when they ended apart.
    assert "tasks 0-1: Exited with exit code 143" in first or all(
        f"task {rank}: Exited with exit code 143" in first for rank in (0, 1)), first[-2000:]
    assert f"0: resuming from {run}/ckpt-{step} at step {step}" in second
    assert f"1: resuming from {run}/workers/1/ckpt-{step} at step {step}" in second
    assert f"0: final: step {STEPS} " in second and slurm.job(job).get("Restarts") == "1"
    print(f"sbatch: step 10 logged {began - submitted:.1f} s after the submission; the requeue line "
          f"{stopped - signalled:.1f} s after scancel --signal=TERM; the resume {resumed - stopped:.1f} s after it")


def test_a_task_killed_with_sigkill_ends_the_others_in_one_line(slurm, cifar_subset_dir, tmp_path):
    env = {k: v for k, v in slurm.env.items() if k != "TF_CONFIG"}
    import subprocess
    step = subprocess.Popen(["srun", "--ntasks=2", "--cpus-per-task=1", "--label", "--kill-on-bad-exit=0",
                             f"--chdir={ROOT}", sys.executable, "train.py",
                             *args(cifar_subset_dir, tmp_path, "--train_steps=400")],
                            env={**env, "PYTHONUNBUFFERED": "1"}, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        lines = []
        for line in step.stdout:
            lines.append(line)
            if line.startswith("0: step 20/"):
                break
        job = next(j for j in slurm.run("squeue", "--noheader", "--format=%i").stdout.split())
        # scontrol listpids: PID JOBID STEPID LOCALID GLOBALID; kill the train.py of global rank 1.
        pids = [row.split() for row in slurm.run("scontrol", "listpids", job).stdout.splitlines()[1:]]
        victim = next(int(p) for p, _, _, _, rank in pids if rank == "1" and _is_train(int(p)))
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        out, err = step.communicate(timeout=180)
        ended = time.monotonic()
    finally:
        if step.poll() is None:
            step.kill()
    survivor = [line for line in err.splitlines() if line.startswith("0: ")]
    assert survivor and survivor[-1].startswith("0: error: lost contact with "), err[-3000:]
    assert "relaunch every worker with the same command" in survivor[-1] and "Traceback" not in err
    assert re.search(r"task 0: Exited with exit code 75", err) and re.search(r"task 1: Killed", err), err[-2000:]
    assert ended - killed < DEADLINE_S
    print(f"srun: the survivor ended {ended - killed:.1f} s after task 1's SIGKILL")


def _is_train(pid):
    try:
        return b"train.py" in open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return False


def test_bad_setups_under_srun_get_one_line(slurm, cifar_subset_dir, tmp_path):
    # A global batch that the 2 tasks can't split.
    result = srun(slurm, *args(cifar_subset_dir, tmp_path / "batch", "--batch_size=33"))
    for rank in (0, 1):
        last = [line for line in result.stderr.splitlines() if line.startswith(f"{rank}: ")][-1]
        assert last == (f"{rank}: error: --batch_size=33 is not divisible by the 2 replicas (2 workers, e.g. Slurm "
                        "tasks, of 1 device(s)); use a multiple of 2"), result.stderr[-2000:]
    # Task 0's port held by another process (bound, not listening: task 1 then waits for it until the timeout).
    jobs = re.findall(r"JobId=(\d+)", slurm.run("scontrol", "-o", "show", "jobs").stdout)
    from training.distribute import slurm as slurm_module
    port = slurm_module.port_base({"SLURM_JOB_ID": str(max(map(int, jobs), default=0) + 1)})
    busy = socket.socket()
    busy.bind(("", port))
    try:
        result = srun(slurm, *args(cifar_subset_dir, tmp_path / "port", "--worker_join_timeout=5"))
    finally:
        busy.close()
    errors = result.stderr.splitlines()
    assert [line for line in errors if line.startswith("0: ")][-1].startswith(
        f"0: error: port {port} of this task (worker 0, localhost:") and "from Slurm)" in result.stderr
    assert "did not start within 5 s (--worker_join_timeout)" in [l for l in errors if l.startswith("1: ")][-1]
    assert "Traceback" not in result.stderr


# Slurm's variables without a cluster: what training/distribute/slurm.py makes of them.
STEP = {"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "4", "SLURM_STEP_NODELIST": "gpu[01-02]",
        "SLURM_STEP_TASKS_PER_NODE": "2(x2)", "SLURM_NTASKS": "4"}


def task_env(monkeypatch, rank, node, local, **changes):
    environ = {**STEP, "SLURM_PROCID": str(rank), "SLURMD_NODENAME": node, "SLURM_LOCALID": str(local), **changes}
    for name, value in environ.items():
        monkeypatch.setenv(name, value)  # the resolver reads SLURM_PROCID from os.environ
    return environ


def test_every_rank_of_a_two_node_step_gets_its_own_nodes_address(monkeypatch):
    from training.distribute import slurm as module
    base = module.port_base(STEP)
    assert base == 20000 + 16 * 7
    expected = (f"gpu01:{base}", f"gpu01:{base + 1}", f"gpu02:{base}", f"gpu02:{base + 1}")
    for rank, (node, local) in enumerate((("gpu01", 0), ("gpu01", 1), ("gpu02", 0), ("gpu02", 1))):
        task, resolver = module.read_task(task_env(monkeypatch, rank, node, local))
        assert task.addresses == expected and task.me == rank and task.is_chief == (rank == 0)
        assert resolver.task_type == "worker" and resolver.task_id == rank and task.source == "Slurm"


def test_inconsistent_or_cyclic_slurm_variables_get_one_line(monkeypatch):
    from training.distribute import cluster, slurm as module
    cases = [({"SLURM_STEP_TASKS_PER_NODE": "3(x2)"}, "inconsistent: SLURM_STEP_NODELIST has 2 node(s), "
              "SLURM_STEP_TASKS_PER_NODE=3(x2) sums to 6 task(s), SLURM_STEP_NUM_TASKS=4"),
             ({"SLURM_PROCID": "4"}, "SLURM_PROCID=4"),
             ({"SLURM_LOCALID": "x"}, "SLURM_LOCALID='x' is not a number"),
             ({"SLURMD_NODENAME": "gpu02"}, "--distribution=block")]  # rank 1 started on the other node
    for changes, message in cases:
        environ = task_env(monkeypatch, 1, "gpu01", 1)
        environ.update(changes)
        monkeypatch.setenv("SLURM_PROCID", environ["SLURM_PROCID"])
        with pytest.raises(cluster.ClusterError, match=re.escape(message)):
            module.read_task(environ)
    batch_script = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4", "SLURM_PROCID": "0"}
    with pytest.raises(cluster.ClusterError, match=r"started once, outside srun; start it with `srun"):
        module.check_launch(batch_script)


def test_gpus_follow_slurms_binding_or_are_shared_by_local_rank():
    from training.distribute import cluster, slurm as module
    node = {**STEP, "SLURMD_NODENAME": "gpu02", "SLURM_LOCALID": "1"}
    assert module.bind_gpus(1, {**node, "SLURM_GPUS_PER_TASK": "1"})[0] is None  # Slurm bound one per task
    assert module.bind_gpus(4, node)[0] == [2, 3]  # 4 GPUs for the node's 2 tasks, unbound: the second half
    assert module.bind_gpus(0, node) == (None, "no GPU")
    with pytest.raises(cluster.ClusterError, match="2 tasks on this node share 1 GPU"):
        module.bind_gpus(1, node)
