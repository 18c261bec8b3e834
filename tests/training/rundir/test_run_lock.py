"""The run lock in one process: what a second holder sees, and where no lock can be taken. The real train.py
refused beside a running one is in test_reliability.py."""
import json
import os
import subprocess
import sys

import pytest

from training.rundir import run_lock
from support import ROOT


def test_a_second_holder_is_refused_naming_the_first_and_release_frees_it(tmp_path):
    first = run_lock.Lock(str(tmp_path))
    record = json.loads((tmp_path / run_lock.LOCK_FILE).read_text())
    assert record["pid"] == os.getpid()
    # flock locks belong to an open file, so a second open in this process conflicts like another process.
    with pytest.raises(run_lock.RunLocked, match=rf"pid {os.getpid()} on this machine, started "):
        run_lock.Lock(str(tmp_path))
    assert json.loads((tmp_path / run_lock.LOCK_FILE).read_text()) == record  # the refused one changed nothing
    first.release()
    with run_lock.Lock(str(tmp_path)):
        pass


def test_a_dead_holder_leaves_no_stale_lock(tmp_path):
    subprocess.run([sys.executable, "-c", "import os, sys; from training.rundir import run_lock; "
                    f"run_lock.Lock({str(tmp_path)!r}); os._exit(0)"], check=True,
                   cwd=ROOT)
    with run_lock.Lock(str(tmp_path)):
        pass


def test_a_bucket_path_is_not_locked_and_says_so(tmp_path):
    said = []
    lock = run_lock.Lock("gs://bucket/run", out=said.append)
    assert lock.fd is None and len(said) == 1 and said[0].startswith("warning: can't lock gs://bucket/run")


@pytest.mark.parametrize("holder,says,never", [
    # The case: train.py as PID 1 of container 766d92a847a7, seen from the Docker host or another one.
    ({"pid": 1, "host": "766d92a847a7", "container": True}, "(pid 1 in container 766d92a847a7, started x); wait "
     "for it to finish, or stop that container (docker stop 766d92a847a7;", "kill 1"),
    ({"pid": 1, "host": "766d92a847a7"}, "stop that container (docker stop 766d92a847a7;", "kill"),  # older record
    ({"pid": 4242, "host": "gpu-node-7", "container": False}, "(pid 4242 on host gpu-node-7, started x); wait for it "
     "to finish, or stop it there (kill 4242 on gpu-node-7)", "container"),
])
def test_the_refusal_says_how_to_stop_the_holder_where_it_runs(holder, says, never):
    message = run_lock._refusal("/runs/a", {**holder, "started": "x"})
    assert says in message and never not in message


def test_inside_the_holders_own_container_it_never_suggests_kill_1(monkeypatch):
    monkeypatch.setattr(run_lock.socket, "gethostname", lambda: "766d92a847a7")
    message = run_lock._refusal("/runs/a", {"pid": 1, "host": "766d92a847a7", "container": True, "started": "x"})
    assert "docker stop 766d92a847a7" in message and "kill 1" not in message
    # Another process of this container (docker exec): kill works from here.
    assert "stop it (kill 57)" in run_lock._refusal("/runs/a", {"pid": 57, "host": "766d92a847a7", "started": "x"})
