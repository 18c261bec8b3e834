"""The run lock in one process: what a second holder sees, and where no lock can be taken. The real train.py
refused beside a running one is in test_reliability.py."""
import json
import os
import subprocess
import sys

import pytest

from training import run_lock


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
    subprocess.run([sys.executable, "-c", "import os, sys; from training import run_lock; "
                    f"run_lock.Lock({str(tmp_path)!r}); os._exit(0)"], check=True,
                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with run_lock.Lock(str(tmp_path)):
        pass


def test_a_bucket_path_is_not_locked_and_says_so(tmp_path):
    said = []
    lock = run_lock.Lock("gs://bucket/run", out=said.append)
    assert lock.fd is None and len(said) == 1 and said[0].startswith("warning: can't lock gs://bucket/run")
