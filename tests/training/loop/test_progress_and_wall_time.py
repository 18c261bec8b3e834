"""The console of a run whose --log_every_steps exceeds an epoch: a progress line at every epoch's end and at least
every 10 s between them; and after a resume, a final line with the segment's and the whole run's wall time: the
real train.py, stopped by SIGTERM after its first epoch and resumed."""
import json
import re
import signal
import time

from support import start, train_args
from training.rundir import wall_time

STEPS = 254  # 2 epochs of the subset at batch 32
EVERY_SECONDS = 10.0  # summaries.Progress's default
STEP_LINE = re.compile(r"step (\d+)/254  loss [\d.]+  top-1 [\d.]+  lr [\d.]+  [\d.]+ images/s  ETA ")


def timed_lines(process):
    """(seconds since the start, line) of each stdout line, then the exit status."""
    started, lines = time.monotonic(), []
    for line in process.stdout:
        lines.append((time.monotonic() - started, line.rstrip("\n")))
        if line.startswith("step 127/"):
            process.send_signal(signal.SIGTERM)  # after the first epoch's line: the first segment ends at 128
    process.communicate(timeout=300)
    return process.returncode, lines


def check_cadence(lines):
    """Step lines at each epoch's end, and none more than EVERY_SECONDS plus one train-loop call (and the eval
    of an epoch's end) apart; returns their steps."""
    steps = [(t, int(m.group(1))) for t, line in lines if (m := STEP_LINE.match(line))]
    # A quiet machine reaches the first epoch's end in under EVERY_SECONDS: then its line is the only one
    assert len(steps) >= 1, lines
    for (t0, s0), (t1, s1) in zip(steps, steps[1:]):
        assert t1 - t0 <= EVERY_SECONDS + 4.0, (s0, s1, t1 - t0)
    return [s for _, s in steps]


def test_progress_lines_come_every_epoch_and_every_few_seconds_and_the_final_line_sums_the_segments(
        cifar_subset_dir, tmp_path):
    argv = train_args(cifar_subset_dir, tmp_path, f"--train_steps={STEPS}", "--log_every_steps=100000",
                      "--steps_per_loop=1")
    status, first = timed_lines(start(*argv))
    assert status == 143 and 127 in check_cadence(first), first
    recorded = json.loads((tmp_path / wall_time.FILE).read_text())["segment_seconds"]
    assert len(recorded) == 1 and recorded[0] > 0
    status, resumed = timed_lines(start(*argv))
    assert status == 0 and STEPS in check_cadence(resumed)
    final = resumed[-1][1]
    match = re.search(r"wall time (\d+):(\d\d):(\d\d) this segment, (\d+):(\d\d):(\d\d) the whole run \(2 segments\)",
                      final)
    assert final.startswith(f"final: step {STEPS} ") and match, final
    h, m, s, H, M, S = map(int, match.groups())
    segment, whole = h * 3600 + m * 60 + s, H * 3600 + M * 60 + S
    recorded = json.loads((tmp_path / wall_time.FILE).read_text())["segment_seconds"]
    assert len(recorded) == 2 and whole == int(sum(recorded)) and segment == int(recorded[1]) and whole > segment
