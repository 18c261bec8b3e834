"""training/loop/budget.py's arithmetic: the plan that fits a budget, a budget too short, a resume's recorded plan,
and the warning of a run behind its plan."""
import dataclasses

import pytest

from support import make_config
from training.errors import TrainingError
from training.loop import budget

SPEED = budget.Speed(steps_per_second=10.0, startup=5.0, evaluation=1.5, epoch_end=0.5, statistics=0.5)


def rule(train_steps, steps_per_epoch):
    return {"train_steps": train_steps, "weight_decay": 1e-3 * (1000 / train_steps) ** 0.5}


def config(**fields):
    return make_config(**{"steps_per_epoch": 50, "steps_per_loop": 10, "time_budget": 120.0, **fields})


def test_the_plan_takes_the_most_steps_whose_steps_evals_and_checkpoints_fit():
    c = config()
    planned = budget.plan(c, SPEED, elapsed=15.0, rule=rule)
    left = 120 * (1 - budget.MARGIN) - 15 - SPEED.startup
    steps = planned.train_steps
    assert budget.seconds_for(steps, SPEED, c) <= left < budget.seconds_for(steps + 1, SPEED, c)
    # 97.6 s left: 13 epochs of 50 steps at 10 steps/s, each 5 s + 2.5 s of statistics, evaluation and checkpoint,
    # take 97.5 s
    assert steps == 650
    assert planned.weight_decay == rule(steps, 50)["weight_decay"]  # the recipe's values follow the plan
    p = planned.budget_plan
    assert p["steps"] == steps and p["deadline"] - p["started_at"] == 120
    assert p["planned_seconds"] <= 120 * (1 - budget.MARGIN) + 1e-6
    assert budget.line(planned).startswith(f"budget 2m: {steps:,} steps = {steps / 50:.1f} epochs at 10.00 steps/s")


def test_the_evaluation_and_checkpoint_at_a_last_partial_epoch_are_counted():
    c = config()
    # an epoch's end and its evaluation share one recompute of the statistics
    assert budget.seconds_for(50, SPEED, c) == pytest.approx(5 + 0.5 + 1.5 + 0.5)
    assert budget.seconds_for(51, SPEED, c) == pytest.approx(5.1 + 2 * (0.5 + 1.5 + 0.5))
    assert budget.seconds_for(100, SPEED, c, from_step=50) == pytest.approx(5 + 0.5 + 1.5 + 0.5)
    every_other = make_config(steps_per_epoch=50, epochs_between_evals=2.0)
    assert budget.seconds_for(100, SPEED, every_other) == pytest.approx(10 + 2 * 0.5 + 1.5 + 2 * 0.5)


def test_a_budget_shorter_than_one_block_and_an_evaluation_is_one_line_with_the_least_that_fits():
    with pytest.raises(TrainingError) as e:
        budget.plan(config(time_budget=20.0), SPEED, elapsed=14.0, rule=rule)
    message = str(e.value)
    assert "\n" not in message and "too short" in message and "give at least --time_budget=" in message
    least = message.rsplit("=", 1)[1]
    assert budget.plan(config(time_budget=float(least.rstrip("s"))), SPEED, elapsed=14.0, rule=rule).train_steps >= 10


def test_a_resume_takes_the_recorded_plan_and_refuses_another_budget():
    planned = budget.plan(config(), SPEED, elapsed=15.0, rule=rule)
    saved = dataclasses.asdict(planned)
    again = budget.recorded(config(), saved)
    assert (again.train_steps, again.weight_decay, again.budget_plan) == (planned.train_steps, planned.weight_decay,
                                                                        planned.budget_plan)
    assert budget.recorded(config(), None) is None
    with pytest.raises(TrainingError, match="planned for --time_budget=2m"):
        budget.recorded(config(time_budget=300.0), saved)


def test_a_run_behind_its_plan_warns_once():
    planned = budget.plan(config(), SPEED, elapsed=15.0, rule=rule)
    lines = []
    clock = budget.Clock(planned, 0, lines.append)
    clock.check(10)
    assert lines == []
    clock.ends -= 30  # as if 30 s had been lost
    clock.check(20)
    clock.check(30)
    assert len(lines) == 1 and "behind the --time_budget plan at step 20" in lines[0]
    assert budget.Clock(config(), 0, lines.append).summary() is None  # a run without a plan has no budget line


def test_a_run_with_a_validation_split_counts_the_test_split_at_its_end():
    info = dataclasses.make_dataclass("Info", ["num_eval", "num_validation"])(num_eval=1000, num_validation=400)
    # validation took 3 s compiling, then 1 s (400 examples); the test split is read twice at that speed, the
    # first time compiled, and the best checkpoint restored (0.5 s)
    assert budget.ending("validation", info, [(0.2, 3.0), (0.2, 1.0)], 0.5) == pytest.approx(2 * 2.5 + 2 + 0.5)
    assert budget.ending("test", info, [(0.2, 3.0), (0.2, 1.0)], 0.5) == 0.0
    ending = dataclasses.replace(SPEED, ending=7.5)
    assert budget.seconds_for(50, ending, config()) == pytest.approx(budget.seconds_for(50, SPEED, config()) + 7.5)
