"""The recipes' rules that scale with the run (flags/recipes.py), through flags.make_config on the prepared subset:
decay points as fractions of the run, a warning for a point past its end, weight decay and the EMA's decay from
the run's steps, and the values the console and config.json show."""
import dataclasses
import json

import pytest
from absl import flags as absl_flags

import data
import flags
from flags import recipes
from support import train_flags

FLAGS = absl_flags.FLAGS


@pytest.fixture(scope="module")
def parse(cifar_subset_dir):
    """parse(*argv) -> (Config, printed lines) for train.py's flags on the shared subset (4068 training images)."""
    with train_flags(cifar_subset_dir, "--depth=20") as parse:
        yield parse


@pytest.mark.parametrize("small_images,epochs,expected", [
    (True, 182, (91, 136.5)),   # He et al.: 32k and 48k of 64k steps
    (True, 30, (15, 22.5)),
    (False, 90, (30, 60, 80)),  # Goyal et al.
    (False, 18, (6, 12, 16)),
])
def test_piecewise_decay_points_are_fractions_of_the_run(small_images, epochs, expected):
    assert recipes.decay_epochs(recipes.recipe(small_images, "classic"), epochs) == pytest.approx(expected)


def test_a_shortened_run_decays_at_the_same_fractions_and_says_so(parse):
    config, lines = parse("--recipe=classic", "--train_epochs=30")
    assert config.lr_decay_epochs == (15, 22.5) and lines == []
    assert config.steps_per_epoch == 31 and config.train_steps == 930
    assert "piecewise x0.1 at epochs 15, 22.5 of 30" in config.describe_recipe()
    assert json.loads(config.to_json())["lr_decay_epochs"] == [15, 22.5]  # what config.json records
    by_steps, _ = parse("--recipe=classic", "--train_steps=620")  # 20 epochs of 31 steps
    assert by_steps.lr_decay_epochs == (10, 15)


def test_a_decay_point_past_the_end_is_a_warning_and_kept(parse):
    config, lines = parse("--recipe=classic", "--train_epochs=30", "--lr_decay_epochs=20,91,136")
    assert config.lr_decay_epochs == (20, 91, 136)
    assert lines == ["warning: --lr_decay_epochs=91,136 lies past the end of this 30-epoch run: the learning rate "
                     "never decays there"]
    _, cosine = parse("--recipe=classic", "--train_epochs=30", "--lr_decay_epochs=91", "--lr_schedule=cosine")
    assert cosine == []  # a cosine schedule has no decay points to miss


def test_the_default_recipe_is_scaled_and_its_weight_decay_follows_the_runs_steps(parse):
    config, _ = parse("--train_epochs=30")  # 930 steps of 128 on the subset
    assert (config.recipe, config.lr_schedule, config.nesterov, config.ema_decay) == ("scaled", "cosine", True, 0.0)
    assert config.weight_decay == pytest.approx(2e-4 * (64_000 / 930) ** 0.5) == pytest.approx(1.659e-3, abs=1e-6)
    assert json.loads(config.to_json())["weight_decay"] == pytest.approx(1.659e-3, abs=1e-6)
    line = config.describe_recipe()
    assert line.startswith("recipe scaled: lr 0.1 cosine over 30 epochs; Nesterov momentum 0.9; weight decay 0.00165")
    longer, _ = parse("--train_epochs=100")  # 3100 steps: a weaker decay
    assert longer.weight_decay == pytest.approx(2e-4 * (64_000 / 3100) ** 0.5)
    assert parse("--train_epochs=30", "--weight_decay=5e-4")[0].weight_decay == 5e-4  # a flag overrides the rule
    classic, _ = parse("--recipe=classic", "--train_epochs=30")
    assert (classic.weight_decay, classic.nesterov, classic.lr_schedule) == (2e-4, False, "piecewise")


@pytest.mark.parametrize("steps,decay", [(930, 1 - 1 / 46.5), (10_000, 1 - 1 / 500), (20, 0.0)])
def test_the_modern_emas_horizon_is_five_percent_of_the_run(parse, steps, decay):
    config, _ = parse("--recipe=modern", f"--train_steps={steps}")
    assert config.ema_decay == pytest.approx(decay)  # 20 steps: a 1-step horizon, 1 - 1/1 = 0
    assert config.label_smoothing == 0.0  # measured to cost 1.5 points on small images at 30 epochs
    assert parse("--recipe=modern", f"--train_steps={steps}", "--ema_decay=0.9")[0].ema_decay == 0.9


def test_large_images_scale_from_goyal_et_al():
    imagenet = recipes.recipe(False, "scaled")
    assert recipes.weight_decay(imagenet, 90 * 1_281_167 // 256) == pytest.approx(1e-4)
    assert recipes.weight_decay(imagenet, 90 * 1_281_167 // 256 // 4) == pytest.approx(2e-4, rel=1e-5)  # 1/4: 2x
    modern = recipes.recipe(False, "modern")
    assert modern["label_smoothing"] == 0.1 and modern["mixup_alpha"] == 0.2 and modern["warmup_epochs"] == 5


@pytest.mark.parametrize("recipe", ["scaled", "classic", "modern"])
def test_a_time_planned_run_is_the_run_of_its_planned_steps(parse, recipe):
    """docs/reliability.md's promise: --train_steps=<planned steps> with the same flags trains the planned run, so
    every length-dependent value resolves the same from the plan as from the flag."""
    planned, _ = parse(f"--recipe={recipe}", "--time_budget=10m")
    rule = flags.length_rule(FLAGS, data.get_info(planned.dataset, planned.data_dir))
    planned = dataclasses.replace(planned, **rule(700, planned.steps_per_epoch))
    by_steps, _ = parse(f"--recipe={recipe}", "--train_steps=700")
    ignore = {"time_budget", "budget_plan"}
    differ = {f.name for f in dataclasses.fields(by_steps) if f.name not in ignore
              and getattr(planned, f.name) != getattr(by_steps, f.name)}
    assert differ == set() and planned.train_steps == 700
