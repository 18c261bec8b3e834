"""The recipes' rules that scale with the run (flags/recipes.py), through flags.make_config on the prepared subset:
decay points as fractions of the run, a warning for a point past its end, and the values the console and
config.json show."""
import json

import pytest
from absl import flags as absl_flags

import flags
from flags import recipes

FLAGS = absl_flags.FLAGS


@pytest.fixture(scope="module")
def parse(cifar_subset_dir):
    """parse(*argv) -> (Config, printed lines) for train.py's flags on the shared subset (4068 training images)."""
    try:
        flags.define_data_flags()
        flags.define_model_flags()
        flags.define_training_flags()
    except absl_flags.DuplicateFlagError:
        pass  # defined by an earlier test of this process

    def parse(*argv):
        FLAGS.unparse_flags()
        FLAGS(["train.py", "--dataset=cifar10", f"--data_dir={cifar_subset_dir}", "--depth=20", *argv])
        lines = []
        config, _ = flags.make_config(FLAGS, out=lines.append)
        return config, lines
    yield parse
    FLAGS.unparse_flags()


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
