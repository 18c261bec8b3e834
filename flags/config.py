"""Turns parsed flags into the frozen training Config: recipe defaults filled in, epochs converted to steps once."""
import dataclasses
import os

import data
import model
from flags import durations, recipes
from training.config import Config
from training.rundir import run_dir


class ConfigError(ValueError):
    """A flag value that can't work, with what to use instead."""


def make_config(flag_values, out=print):
    """(Config, DatasetInfo) from absl flag values; raises ConfigError or data.DataError with a one-line message,
    and prints a warning where a flag can't do what it says (a decay point past the end)."""
    f = flag_values
    _check_non_negative(f, "keep_best", "train_epochs", "train_steps", "learning_rate", "warmup_epochs", "weight_decay",
                        "label_smoothing", "momentum", "ema_decay", "cutout", "randaugment_layers",
                        "randaugment_magnitude", "mixup_alpha", "cutmix_alpha", "mixup_prob", "cutmix_prob",
                        "precise_bn_examples")
    _check_positive(f, "batch_size", "steps_per_loop", "log_every_steps", "keep_checkpoints", "epochs_between_evals",
                    "cpu_devices", "width", "bn_momentum", "worker_join_timeout")
    entry = model.MODELS[f.model]
    model_dir = f.model_dir or os.path.join("runs", f"{_slug(f.dataset)}_{_model_name(f)}")
    validation_split, test_split = _split_request(f, model_dir)
    info = data.get_info(f.dataset, f.data_dir, f.image_size, strict=f.strict, validation_split=validation_split,
                         test_split=test_split)
    if f.image_size is None and not info.small_images:  # large images are resized to the model's input size
        info = dataclasses.replace(info, image_size=entry.image_size)
    try:
        model.check_model(f.model, info.image_size, f.depth, f.unit, f.arch, f.width)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    recipe = _recipe(f, info)
    pick = lambda name: recipe[name] if getattr(f, name) is None else getattr(f, name)  # noqa: E731
    batch_size = pick("batch_size")
    steps_per_epoch = info.num_train // batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"--batch_size={batch_size} is larger than the {info.num_train} training examples")
    time_budget = _time_budget(f)
    if time_budget:  # one epoch until training has measured its speed and planned the run (training/loop/budget.py)
        train_steps = steps_per_epoch
    else:
        train_steps = f.train_steps if f.train_steps is not None else round(pick("train_epochs") * steps_per_epoch)
    if train_steps <= 0:
        raise ConfigError("nothing to train: give --train_steps or --train_epochs greater than 0")
    decay_epochs = _decay_epochs(f, recipe, train_steps / steps_per_epoch, out)
    ema_decay = f.ema_decay if f.ema_decay is not None else recipes.ema_decay(recipe, train_steps)
    weight_decay = f.weight_decay if f.weight_decay is not None else recipes.weight_decay(recipe, train_steps)
    if ema_decay >= 1:
        raise ConfigError(f"--ema_decay must be below 1 (e.g. 0.9999), got {ema_decay}")
    mixing = _mix_probabilities(f, pick("mixup_alpha"), pick("cutmix_alpha"))
    data_service = _data_service(f)
    return Config(
        dataset=f.dataset, data_dir=f.data_dir, image_size=info.image_size, num_classes=info.num_classes,
        strict=f.strict, model_dir=model_dir, **_splits_of(info),
        depth=f.depth, unit=f.unit, arch=f.arch, width=f.width, sync_bn=f.sync_bn, bn_momentum=f.bn_momentum,
        batch_size=batch_size, train_steps=train_steps, steps_per_epoch=steps_per_epoch,
        learning_rate=pick("learning_rate"), lr_batch_denominator=recipe["lr_batch_denominator"],
        lr_schedule=pick("lr_schedule"), lr_decay_epochs=decay_epochs, warmup_epochs=pick("warmup_epochs"),
        momentum=f.momentum, nesterov=pick("nesterov"), weight_decay=weight_decay,
        label_smoothing=pick("label_smoothing"), epochs_between_evals=f.epochs_between_evals,
        steps_per_loop=f.steps_per_loop, log_every_steps=f.log_every_steps, keep_checkpoints=f.keep_checkpoints,
        keep_best=f.keep_best, nan_policy=f.nan_policy, debug_nan_at_step=f.debug_nan_at_step,
        seed=f.seed, deterministic=f.deterministic, dtype=f.dtype, xla=f.xla, strategy=f.strategy,
        num_gpus=f.num_gpus, cpu_devices=f.cpu_devices, profile_steps=_profile_steps(f.profile_steps),
        init_checkpoint=f.init_checkpoint, freeze_backbone=f.freeze_backbone, model=f.model, recipe=f.recipe,
        ema_decay=ema_decay, cutout=pick("cutout"), randaugment_layers=pick("randaugment_layers"),
        randaugment_magnitude=pick("randaugment_magnitude"), precise_bn_examples=f.precise_bn_examples,
        worker_join_timeout=f.worker_join_timeout, time_budget=time_budget, data_service=data_service,
        **mixing), info


def length_rule(flag_values, info):
    """The recipe's length-dependent values for a run of any length (flags/durations.py length_rule): what a
    --time_budget run resolves once its length is planned."""
    return durations.length_rule(flag_values, _recipe(flag_values, info))


def _recipe(f, info):
    return {**recipes.recipe(info.small_images, f.recipe), **model.MODELS[f.model].recipe}


def _time_budget(f):
    """--time_budget in seconds (0: none); refuses it beside --train_epochs or --train_steps."""
    if f.time_budget is None:
        return 0.0
    given = [name for name in ("train_epochs", "train_steps") if getattr(f, name) is not None]
    if given:
        raise ConfigError(f"--time_budget plans the run's length itself; drop --{given[0]} (or --time_budget)")
    try:
        return durations.parse(f.time_budget)
    except durations.DurationError as e:
        raise ConfigError(str(e)) from None


def _data_service(f):
    """--data_service as given (None: none), checked; refused beside --deterministic, which it can't keep."""
    if f.data_service is None:
        return None
    from data import service
    try:
        service.parse_address(f.data_service)
    except ValueError as e:
        raise ConfigError(f"--data_service={f.data_service} is not a tf.data service dispatcher's address: {e}") \
            from None
    if f.deterministic:
        raise ConfigError("--deterministic can't hold with --data_service: its batches arrive in the order the "
                          "service's workers finish them; drop one of the two (docs/reliability.md)")
    return f.data_service


def _split_request(f, model_dir):
    """(--validation_split, --test_split) as given; left out, a resumed run's own (runs from before validation
    splits existed had none), else None: the dataset's default."""
    try:
        saved = run_dir.read_config(model_dir)
    except ValueError:  # an unreadable config.json: the run's start-up check says so
        saved = None
    if saved is None:
        return f.validation_split, f.test_split
    return (saved["validation_split"] if f.validation_split is None else f.validation_split,
            saved["test_split"] if f.test_split is None else f.test_split)


def _splits_of(info):
    """The Config's record of the splits: validation_split None = the dataset's own, 0 = none, else the
    fraction carved from training; test_split the fraction carved from a flat folder, else None."""
    if not info.has_validation:
        validation = 0.0
    else:
        validation = info.validation_fraction or None
    return {"validation_split": validation, "test_split": info.test_fraction or None}


def _decay_epochs(f, recipe, train_epochs, out):
    """--lr_decay_epochs as given, else the recipe's fractions of this run; warns of a point the run never reaches."""
    if f.lr_decay_epochs is None:
        return recipes.decay_epochs(recipe, train_epochs)
    try:
        epochs = tuple(float(e) for e in f.lr_decay_epochs)
    except ValueError:
        raise ConfigError(f"--lr_decay_epochs takes epochs, e.g. 15,22.5, not {','.join(f.lr_decay_epochs)}") from None
    late = [e for e in epochs if e >= train_epochs]
    if late and (f.lr_schedule or recipe["lr_schedule"]) == "piecewise":
        out(f"warning: --lr_decay_epochs={','.join(f'{e:g}' for e in late)} lies past the end of this "
            f"{train_epochs:g}-epoch run: the learning rate never decays there")
    return epochs


def _mix_probabilities(f, mixup_alpha, cutmix_alpha):
    """The mix fields: a method with alpha > 0 gets every batch alone, half of them beside the other."""
    both = mixup_alpha > 0 and cutmix_alpha > 0
    mixup_prob = f.mixup_prob if f.mixup_prob is not None else (0.5 if both else float(mixup_alpha > 0))
    cutmix_prob = f.cutmix_prob if f.cutmix_prob is not None else (0.5 if both else float(cutmix_alpha > 0))
    for name, prob, alpha in (("mixup", mixup_prob, mixup_alpha), ("cutmix", cutmix_prob, cutmix_alpha)):
        if prob > 0 and alpha <= 0:
            raise ConfigError(f"--{name}_prob={prob} needs --{name}_alpha > 0 (e.g. {0.2 if name == 'mixup' else 1.0})")
    if mixup_prob + cutmix_prob > 1 + 1e-9:
        raise ConfigError(f"--mixup_prob + --cutmix_prob must not pass 1, got {mixup_prob} + {cutmix_prob}")
    return {"mixup_alpha": mixup_alpha, "cutmix_alpha": cutmix_alpha, "mixup_prob": mixup_prob,
            "cutmix_prob": cutmix_prob}


def _profile_steps(value):
    if not value:
        return ()
    try:
        first, last = (int(v) for v in value)
    except ValueError:
        raise ConfigError(f"--profile_steps takes two steps, first,last (e.g. 20,25), not {','.join(value)}") from None
    if not 0 < first <= last:
        raise ConfigError(f"--profile_steps needs 0 < first <= last, got {first},{last}")
    return first, last


def _check_non_negative(f, *names):
    for name in names:
        value = getattr(f, name)
        if value is not None and value < 0:
            raise ConfigError(f"--{name} must not be negative, got {value}")


def _check_positive(f, *names):
    for name in names:
        value = getattr(f, name)
        if value is not None and value <= 0:
            raise ConfigError(f"--{name} must be positive, got {value}")


def _model_name(f):
    return f"resnet_v2_{f.depth}" if f.model == "resnet_v2" else f.model


def _slug(dataset):
    return dataset.rstrip("/").replace("folder:", "folder_").replace("/", "_").strip("_")
