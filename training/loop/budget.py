"""--time_budget: a short measured trial of this run's own step, evaluation and checkpoint, then a plan of
train_steps such that training, the evaluations, the checkpoints and the final evaluation end within the budget,
counted from the process' start. The plan is fixed once made and recorded in config.json: a resume takes it as
it is (the same steps, schedule and recipe values, so --deterministic and a bit-identical resume hold), and a run
that falls behind it says so once instead of re-planning. docs/training.md, Time budgets, has the measurements."""
import dataclasses
import datetime
import math
import os
import tempfile
import time

import tensorflow as tf

from training.errors import TrainingError
from training.loop.blocks import Blocks, make_train_loop

MARGIN = 0.02         # of the budget, kept free for the process' exit (the final line, tf.data's teardown)
TRIAL_SECONDS = 3.0   # s of steady steps timed after the compiling block
BEHIND = 0.05         # a run this share of its budget behind its plan (and >= 5 s) warns, once


@dataclasses.dataclass(frozen=True)
class Speed:
    """What a trial measured: steady steps/s, and seconds for the rest (s)."""
    steps_per_second: float
    startup: float     # building the network, compiling its step and its evaluation: the real run pays it again
    evaluation: float  # one evaluation of the test split
    epoch_end: float   # an epoch's checkpoint
    statistics: float = 0.0  # the precise batch-norm recompute before each evaluation and checkpoint (once if both)
    ending: float = 0.0      # a run with a validation split: the test split at the end, for the final weights and
                             # the best checkpoint's (restored), estimated from the evaluation's time per example


def process_age():
    """Seconds since this process started (Linux /proc; elsewhere 0: the budget then counts from the call)."""
    try:
        with open("/proc/self/stat") as f:
            started_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def measure(config, info, strategy, build, evaluation_of, batches, step_of):
    """Speed of this run's setup, from a throwaway copy of it: its network, step, evaluation and a checkpoint.
    build, evaluation_of, batches and step_of are training/loop/run.py's (the real run is built the same way)."""
    started = time.perf_counter()
    net, opt, ema = build(config, info, strategy)
    train_step = step_of(config, info, net, opt)
    blocks = Blocks(make_train_loop(strategy, train_step, config.xla, ema, None, opt))
    iterator, n = batches(config, info, strategy, 0), config.steps_per_loop
    blocks(iterator, 0, n)  # traces and compiles
    compiled = time.perf_counter()
    ran = 0
    while ran < 2 * n or time.perf_counter() - compiled < TRIAL_SECONDS:
        ran += blocks(iterator, ran + n, n)[0]
    steps_per_second = ran / (time.perf_counter() - compiled)
    evaluate = evaluation_of(config, info, strategy, net, ema, lambda line: None)
    seconds = []
    for _ in range(2):  # the first compiles the recompute of the statistics and the evaluation
        began = time.perf_counter()
        evaluate.refresh_statistics()
        refreshed = time.perf_counter()
        evaluate()
        seconds.append((refreshed - began, time.perf_counter() - refreshed))
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        tf.train.Checkpoint(model=net, optimizer=opt).write(os.path.join(directory, "ckpt"))
    checkpoint = time.perf_counter() - began
    startup = compiled - started - n / steps_per_second + sum(seconds[0]) - sum(seconds[1])
    return Speed(steps_per_second, max(startup, 0.0), seconds[1][1], checkpoint, seconds[1][0],
                 ending(evaluate.split, info, seconds, checkpoint))


def ending(split, info, seconds, checkpoint):
    """Seconds of testing.test_at_end when the run evaluates a validation split (else 0: its last evaluation
    is the test split's): the test split read twice at validation's speed per example, its first reading
    compiled as validation's was, and the best checkpoint's restore, timed as a checkpoint's write."""
    if split == "test":
        return 0.0
    (_, first), (_, again) = seconds
    per_example = again / max(info.num_validation, 1)
    return 2 * per_example * info.num_eval + max(first - again, 0.0) + checkpoint


def seconds_for(train_steps, speed, config, from_step=0):
    """Planned seconds of steps from_step+1 .. train_steps with their epoch ends and evaluations, the last one's
    included (the loop checkpoints and evaluates at the end whether or not it is an epoch's), and the end's test
    evaluations."""
    def count(every):
        return train_steps // every - from_step // every + (train_steps % every != 0)
    epochs, evals = config.steps_per_epoch, config.eval_every_steps
    both = count(math.lcm(epochs, evals))
    return ((train_steps - from_step) / speed.steps_per_second + count(epochs) * speed.epoch_end
            + count(evals) * speed.evaluation + (count(epochs) + count(evals) - both) * speed.statistics
            + speed.ending)


def plan(config, speed, elapsed, rule, broadcast=None):
    """The Config planned to end within config.time_budget, `elapsed` s after the process started; rule(steps,
    steps_per_epoch) is the recipe's length-dependent values (flags/durations.py); broadcast: the chief's plan on
    every worker. Raises TrainingError when not even one block and one evaluation fit."""
    left = config.time_budget * (1 - MARGIN) - elapsed - speed.startup
    low, high = 0, max(int(left * speed.steps_per_second), 0)
    while low < high:  # the most steps whose plan fits: seconds_for grows with the steps
        mid = (low + high + 1) // 2
        low, high = (mid, high) if seconds_for(mid, speed, config) <= left else (low, mid - 1)
    train_steps = broadcast(low) if broadcast else low
    if train_steps < config.steps_per_loop:
        block = (config.steps_per_loop / speed.steps_per_second + speed.evaluation + speed.epoch_end
                 + speed.statistics + speed.ending)
        needed = 10 * -(-(elapsed + speed.startup + block) / (1 - MARGIN) // 10)  # rounded up to 10 s
        raise TrainingError(
            f"--time_budget={describe(config.time_budget)} is too short for one block of {config.steps_per_loop} "
            f"steps and an evaluation ({block:.0f} s) after {elapsed + speed.startup:.0f} s of start-up and speed "
            f"trial; give at least --time_budget={describe(needed)}")
    now = time.time()
    record = {"budget_seconds": config.time_budget, "steps": train_steps,
              "steps_per_second": round(speed.steps_per_second, 3), "startup_seconds": round(speed.startup, 2),
              "evaluation_seconds": round(speed.evaluation, 2), "epoch_end_seconds": round(speed.epoch_end, 2),
              "statistics_seconds": round(speed.statistics, 2), "ending_seconds": round(speed.ending, 2),
              "trial_seconds": round(elapsed, 1),
              "planned_seconds": round(elapsed + speed.startup + seconds_for(train_steps, speed, config), 1),
              "started_at": round(now - elapsed, 1), "deadline": round(now - elapsed + config.time_budget, 1)}
    return dataclasses.replace(config, **rule(train_steps, config.steps_per_epoch), budget_plan=record)


def recorded(config, saved):
    """The Config of a resumed time-planned run: its recorded plan and the values it resolved, as they are.
    saved: the run's config.json config (None or without a plan: plan anew). Raises TrainingError for a resume
    with another budget, or with a budget of a run planned by steps."""
    if not saved or not saved.get("budget_plan"):
        if saved and saved.get("train_steps") and config.time_budget and saved.get("time_budget") == 0.0 \
                and tf.train.latest_checkpoint(config.model_dir):
            raise TrainingError(f"{config.model_dir} trains for {saved['train_steps']} steps, not to a time budget; "
                                "resume it without --time_budget, or start a new --model_dir")
        return None
    if saved["time_budget"] != config.time_budget:
        raise TrainingError(f"{config.model_dir} was planned for --time_budget={describe(saved['time_budget'])}; "
                            "pass the same to resume it, or start a new --model_dir")
    return dataclasses.replace(config, train_steps=saved["train_steps"], weight_decay=saved["weight_decay"],
                               ema_decay=saved["ema_decay"], lr_decay_epochs=tuple(saved["lr_decay_epochs"]),
                               budget_plan=saved["budget_plan"])


def describe(seconds):
    seconds = round(seconds)
    parts = ((seconds // 3600, "h"), (seconds // 60 % 60, "m"), (seconds % 60, "s"))
    return "".join(f"{value}{unit}" for value, unit in parts if value) or "0s"


def line(config):
    """The plan in one line: budget 45m: 11,700 steps = 30.0 epochs at 4.33 steps/s; ...; ends by 14:32."""
    p = config.budget_plan
    evals = config.eval_every_steps
    end = datetime.datetime.fromtimestamp(p["started_at"] + p["planned_seconds"]).strftime("%H:%M:%S")
    return (f"budget {describe(p['budget_seconds'])}: {p['steps']:,} steps = "
            f"{p['steps'] / config.steps_per_epoch:.1f} epochs at {p['steps_per_second']:.2f} steps/s; evals every "
            f"{evals} steps ({p['evaluation_seconds']:.1f} s each), checkpoints every {config.steps_per_epoch}; "
            f"ends by {end} ({p['trial_seconds']:.0f} s of start-up and speed trial, {p['startup_seconds']:.0f} s to "
            "build the run)")


class Clock:
    """Compares the run's progress with its plan, and says once when it has fallen behind (a shared machine, a
    slower node after a resume): the plan is kept, since the schedule and the recipe values depend on it."""

    def __init__(self, config, step, out=print):
        self.config, self.out, self.warned = config, out, False
        self.plan = p = config.budget_plan
        if not p:
            return
        self.speed = Speed(p["steps_per_second"], p["startup_seconds"], p["evaluation_seconds"],
                           p["epoch_end_seconds"], p.get("statistics_seconds", 0.0), p.get("ending_seconds", 0.0))
        # What is left of the plan from `step`, from now: a resumed run ends its remaining steps in the time the
        # plan gave them (the time it was stopped is not counted).
        self.ends = time.time() + seconds_for(config.train_steps, self.speed, config, from_step=step)

    def check(self, step, out=None):
        """Warns once if the run, at `step`, is behind its plan by BEHIND of the budget (and >= 5 s)."""
        if self.warned or not self.plan:
            return
        projected = time.time() + seconds_for(self.config.train_steps, self.speed, self.config, from_step=step)
        late = projected - self.ends
        if late > max(BEHIND * self.config.time_budget, 5.0):
            self.warned = True
            (out or self.out)(
                f"warning: {late:.0f} s behind the --time_budget plan at step {step} (the machine is slower than "
                f"when it was planned, {self.speed.steps_per_second:.2f} steps/s); the plan is kept, so the run "
                f"ends about {datetime.datetime.fromtimestamp(projected):%H:%M:%S} or later instead of "
                f"{datetime.datetime.fromtimestamp(self.ends):%H:%M:%S}")

    def summary(self):
        """The last line of a time-planned run: when it ended against its plan and its budget."""
        if not self.plan:
            return None
        off = time.time() - self.ends
        return (f"budget {describe(self.config.time_budget)}: ended {abs(off):.0f} s {'after' if off > 0 else 'before'} "
                f"its plan; this process ran {process_age():.0f} s")


def resolve(config, info, strategy, saved, rule, parts, broadcast=None, out=print):
    """config with its plan: the recorded one of a resumed run (saved: its config.json config), else one made now
    from a trial of this run (parts: run.py's build, evaluation_of, batches and step_of); prints it in one line."""
    resumed = recorded(config, saved)
    if resumed is not None:
        if broadcast:
            broadcast(resumed.train_steps)
        out(line(resumed) + "; resumed with this recorded plan (the time it was stopped is not counted)")
        return resumed
    if rule is None:
        raise TrainingError("--time_budget needs the recipe's length rule (flags.length_rule) to plan the run")
    out(f"budget {describe(config.time_budget)}: timing {config.steps_per_loop}-step blocks, an evaluation and a "
        "checkpoint of this run to plan its length")
    planned = plan(config, measure(config, info, strategy, *parts), process_age(), rule, broadcast)
    out(line(planned))
    if config.deterministic:
        out("--deterministic with --time_budget: the plan depends on the measured speed, so the same command may "
            f"plan other steps; this run is reproducible as recorded: its resume, or --train_steps="
            f"{planned.train_steps} with the same flags, trains bit for bit the same")
    return planned
