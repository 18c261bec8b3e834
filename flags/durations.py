"""--time_budget: a duration such as 90s, 45m, 2h or 1h30m parsed to seconds, and the length-dependent recipe values
a time-planned run resolves once training has measured its speed (training/loop/budget.py plans the steps)."""
import re

from flags import recipes

UNITS = {"h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")


class DurationError(ValueError):
    """A duration that can't be read, with the forms that can."""


def parse(text):
    """Seconds in `text` (90s, 45m, 2h, 1h30m, 1.5h); DurationError for anything else, 0 or less included."""
    compact = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"[+-]?\d+(\.\d+)?", compact):  # a bare number: which unit was meant?
        if float(compact) <= 0:
            raise DurationError(f"--time_budget must be longer than 0, got {text!r}; e.g. 90s, 45m, 2h")
        raise DurationError(f"--time_budget needs a unit: {compact}s, {compact}m or {compact}h, not {text!r}")
    parts = _PART.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise DurationError(f"--time_budget takes a duration such as 90s, 45m, 2h or 1h30m, not {text!r}")
    seconds = sum(float(number) * UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise DurationError(f"--time_budget must be longer than 0, got {text!r}; e.g. 90s, 45m, 2h")
    return seconds


def length_rule(flag_values, recipe):
    """rule(train_steps, steps_per_epoch) -> the Config fields that depend on a run's length (train_steps, weight
    decay, EMA decay, decay points), by the recipe's own rules (flags/recipes.py), except those given as flags.
    training/ calls it with the planned steps; it never imports flags/."""
    f = flag_values

    def rule(train_steps, steps_per_epoch):
        fields = {"train_steps": train_steps}
        if f.weight_decay is None:
            fields["weight_decay"] = recipes.weight_decay(recipe, train_steps)
        if f.ema_decay is None:
            fields["ema_decay"] = recipes.ema_decay(recipe, train_steps)
        if f.lr_decay_epochs is None:
            fields["lr_decay_epochs"] = recipes.decay_epochs(recipe, train_steps / steps_per_epoch)
        return fields
    return rule
