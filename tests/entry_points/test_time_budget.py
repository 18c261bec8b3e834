"""train.py --time_budget end to end: a short run ends within 10 % of its budget or 15 s (the acceptance bound),
its schedule completed and its final evaluation done; a SIGTERM and a resume still end within the documented
bound (docs/training.md, Time budgets); bad budgets are one line. Tiny depth-8 runs of 45 s on the shared subset."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from support import ENV, ROOT, run, train_args

BUDGET = 45.0
SLACK = max(0.1 * BUDGET, 15.0)
RESTART = 20.0  # s: a resume's own start-up (import, build, compile), which the plan can't hold (docs/training.md)


def budget_args(data_dir, model_dir, *extra):
    # No precise batch norm and evaluations every 2 epochs: the few steps a 40-s run has go to training.
    return train_args(data_dir, model_dir, f"--time_budget={BUDGET:g}s", "--precise_bn_examples=0",
                      "--epochs_between_evals=2", "--log_every_steps=10", "--steps_per_loop=5", *extra)


def last_row(model_dir):
    with open(os.path.join(model_dir, "metrics.csv")) as f:
        return list(csv.DictReader(f))[-1]


def recorded(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)["config"]


def timed(argv, stop_after=None):
    """(exit status, stdout, stderr, seconds from the process' start to its end); stop_after: SIGTERM once a line
    of stdout starts with it."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "train.py", *argv], cwd=ROOT, env=ENV, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    if stop_after:
        for line in process.stdout:
            lines.append(line)
            if line.startswith(stop_after):
                process.send_signal(signal.SIGTERM)
                break
    out, err = process.communicate(timeout=600)
    return process.returncode, "".join(lines) + out, err, time.monotonic() - started


def test_a_budgeted_run_ends_on_time_with_its_schedule_completed(cifar_subset_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    # A validation split: the plan also counts the test split's evaluations at the end (final and best)
    status, out, err, seconds = timed(budget_args(cifar_subset_dir, model_dir, "--validation_split=0.1"))
    assert status == 0, err[-2000:]
    plan_line = next(line for line in out.splitlines()
                     if line.startswith(f"budget {BUDGET:g}s: ") and " steps = " in line)
    assert "epochs at" in plan_line and "ends by" in plan_line
    assert abs(seconds - BUDGET) <= SLACK, f"{seconds:.1f} s for a {BUDGET:g}-s budget:\n{out}"
    config = recorded(model_dir)
    plan = config["budget_plan"]
    assert plan["steps"] == config["train_steps"] and plan["budget_seconds"] == BUDGET
    assert f"final: step {config['train_steps']}  test top-1" in out  # the final evaluation ran
    assert "best on validation: step" in out and plan["ending_seconds"] > 0
    row = last_row(model_dir)
    assert int(row["step"]) == config["train_steps"] and float(row["eval_top_1"]) > 0
    assert float(row["learning_rate"]) < 1e-6  # the cosine schedule reached its end value, 0
    assert f"budget {BUDGET:g}s: ended" in out


def test_a_stopped_and_resumed_run_keeps_its_plan_and_ends_within_the_bound(cifar_subset_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    argv = budget_args(cifar_subset_dir, model_dir)
    status, out, err, first = timed(argv, stop_after="step 20/")
    assert status == 143, err[-2000:]
    planned = recorded(model_dir)
    time.sleep(5)  # stopped time: not counted
    status, out, err, second = timed(argv)
    assert status == 0, err[-2000:]
    assert "resumed with this recorded plan" in out and "timing" not in out  # no new trial, no new plan
    assert recorded(model_dir)["budget_plan"] == planned["budget_plan"]
    assert f"final: step {planned['train_steps']}  test top-1" in out
    assert float(last_row(model_dir)["learning_rate"]) < 1e-6
    assert first + second <= BUDGET + SLACK + RESTART, f"{first:.1f} s + {second:.1f} s:\n{out}"


@pytest.mark.parametrize("extra, message", [
    (["--time_budget=0"], "--time_budget must be longer than 0"),
    (["--time_budget=abc"], "--time_budget takes a duration such as 90s, 45m, 2h or 1h30m, not 'abc'"),
    (["--time_budget=10m", "--train_epochs=3"], "--time_budget plans the run's length itself; drop --train_epochs"),
    (["--time_budget=3s"], "--time_budget=3s is too short for one block of 10 steps and an evaluation"),
])
def test_bad_budgets_are_one_line(cifar_subset_dir, tmp_path, extra, message):
    result = run("train.py", *train_args(cifar_subset_dir, str(tmp_path / "run")), *extra, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {message}"), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
