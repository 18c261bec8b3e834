"""--time_budget's durations, and the length rule a planned run resolves its recipe values by."""
import types

import pytest

from flags import durations, recipes


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("45m", 2700), ("2h", 7200), ("1h30m", 5400),
                                           ("1.5h", 5400), (" 2M ", 120)])
def test_durations_parse(text, seconds):
    assert durations.parse(text) == seconds


@pytest.mark.parametrize("text", ["0", "0s", "abc", "45", "m", "-5m", "5 minutes", "", "1h-30m"])
def test_bad_durations_are_one_line_that_shows_the_form(text):
    with pytest.raises(durations.DurationError) as e:
        durations.parse(text)
    assert "\n" not in str(e.value) and ("90s" in str(e.value) or "needs a unit: 45s, 45m or 45h" in str(e.value))


def test_the_length_rule_is_the_recipes_own_and_keeps_explicit_flags():
    recipe = recipes.recipe(small_images=True, name="modern")
    unset = types.SimpleNamespace(weight_decay=None, ema_decay=None, lr_decay_epochs=None)
    fields = durations.length_rule(unset, recipe)(930, 31)
    assert fields == {"train_steps": 930, "weight_decay": recipes.weight_decay(recipe, 930),
                      "ema_decay": recipes.ema_decay(recipe, 930), "lr_decay_epochs": recipes.decay_epochs(recipe, 30)}
    assert abs(fields["weight_decay"] - 1.66e-3) < 1e-5
    given = types.SimpleNamespace(weight_decay=5e-4, ema_decay=0.99, lr_decay_epochs=["10"])
    assert durations.length_rule(given, recipe)(930, 31) == {"train_steps": 930}
