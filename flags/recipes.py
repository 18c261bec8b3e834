"""The training recipes, as small diffs of one base (the CIFAR recipe of He et al. 2016), and the rules that scale
them with the run. `classic` is the papers' (BASE, + LARGE_IMAGES for ImageNet-like data); `scaled` (the default)
adds a cosine schedule, Nesterov momentum and a weight decay scaled to the run's length; `modern` adds a weight
EMA, and for large images label smoothing, RandAugment, mixup and cutmix. Explicit flags override any of them.

What the rules resolve to is recorded in config.json and printed at start (training/config.py describe_recipe).
The measurements behind them: docs/training.md, Recipes."""

BASE = {
    "batch_size": 128,
    "learning_rate": 0.1,          # at batch lr_batch_denominator; scaled linearly with the batch
    "lr_batch_denominator": 128,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 2e-4,
    "weight_decay_steps": None,    # None: fixed; else weight_decay is the value for a run of this many steps
    "train_epochs": 182,           # 64k steps at batch 128 on CIFAR's 50k images
    "lr_decay_fractions": (0.5, 0.75),  # of the run: x0.1 at 32k and 48k of 64k steps (epochs 91, 136.5 of 182)
    "warmup_epochs": 0.0,
    "lr_schedule": "piecewise",
    "label_smoothing": 0.0,
    "ema_horizon": 0.0,            # weight EMA: its horizon as a share of the run's steps; 0: no EMA
    "cutout": 0,                   # px; 0: none
    "randaugment_layers": 0,
    "randaugment_magnitude": 9.0,
    "mixup_alpha": 0.0,
    "cutmix_alpha": 0.0,
}

# ImageNet-style data (images larger than 64 px): Goyal et al. 2017, 90 epochs with 5 of warm-up.
LARGE_IMAGES = {
    "batch_size": 256,
    "lr_batch_denominator": 256,
    "weight_decay": 1e-4,
    "train_epochs": 90,
    "lr_decay_fractions": (1 / 3, 2 / 3, 8 / 9),  # epochs 30, 60, 80 of 90
    "warmup_epochs": 5.0,
}
# The published values are for their runs' lengths: 64k steps (He et al., CIFAR), 90 epochs of ImageNet's 1.28M
# images at batch 256 (Goyal et al.).
PUBLISHED_STEPS = {True: 64_000, False: 90 * 1_281_167 // 256}

# What measured best at the budgets users run (ResNet-20, 30 epochs on the shared 4068-image CIFAR subset, 3 seeds
# per row: docs/training.md): the cosine schedule, Nesterov (+2.1 over plain momentum) and a weight decay for the
# run's length (+2.6 for 2e-3 over He et al.'s 2e-4); classic as a whole scored 4.1 points under it.
SCALED = {
    "lr_schedule": "cosine",
    "nesterov": True,
    "weight_decay_steps": "published",  # weight_decay * sqrt(published steps / this run's steps)
}
# "ResNet strikes back"-style (Wightman et al. 2021; timm's and the Model Garden's vision configs), kept to what
# a plain SGD trainer runs, on top of SCALED: a weight EMA over the last 5 % of the run.
MODERN = {
    "ema_horizon": 0.05,
}
# Small images: nothing more. At 30 epochs of the subset label smoothing 0.1 cost 1.5 points (3 seeds), cutout 8
# 1.0, and earlier cutout 16 3.9, mixup + cutmix 2.1 and RandAugment 11.7: regularizers for budgets of hundreds of
# epochs, not tens.
MODERN_SMALL = {}
# Large images: label smoothing 0.1, RandAugment m9 n2, mixup 0.2 / cutmix 1.0 half the batches each (timm's
# defaults); 5 warm-up epochs are the large-image base already.
MODERN_LARGE = {
    "label_smoothing": 0.1,
    "randaugment_layers": 2,
    "randaugment_magnitude": 9.0,
    "mixup_alpha": 0.2,
    "cutmix_alpha": 1.0,
}
RECIPES = ("classic", "scaled", "modern")
DEFAULT_RECIPE = "scaled"


def recipe(small_images, name=DEFAULT_RECIPE):
    base = dict(BASE) if small_images else {**BASE, **LARGE_IMAGES}
    if name in ("scaled", "modern"):
        base.update(SCALED)
        if base["weight_decay_steps"] == "published":
            base["weight_decay_steps"] = PUBLISHED_STEPS[small_images]
    if name == "modern":
        base.update({**MODERN, **(MODERN_SMALL if small_images else MODERN_LARGE)})
    return base


def weight_decay(recipe, train_steps):
    """The recipe's weight decay for a run of train_steps: fixed, or scaled as 1 / sqrt(steps) from the value for
    weight_decay_steps (Loshchilov & Hutter's normalized weight decay, 2019: lambda = lambda_norm * sqrt(b / (B T))).
    A short run gets a stronger decay: 2e-4 at CIFAR's 64k steps is 1.66e-3 at 930 (30 epochs of 4068 images)."""
    if not recipe["weight_decay_steps"]:
        return recipe["weight_decay"]
    return recipe["weight_decay"] * (recipe["weight_decay_steps"] / max(train_steps, 1)) ** 0.5


def ema_decay(recipe, train_steps):
    """The weight EMA's decay for a run of train_steps: a horizon of ema_horizon of the run (1 / (1 - decay)
    steps), so that the average spans the same share of any run; 0 without an EMA. 930 steps at 5 %: 0.9785."""
    if not recipe["ema_horizon"]:
        return 0.0
    return 1.0 - 1.0 / max(recipe["ema_horizon"] * train_steps, 1.0)


def decay_epochs(recipe, train_epochs):
    """A piecewise schedule's decay points, in epochs of this run: the recipe's fractions of its length, so that a
    run shortened with --train_epochs still decays (at 30 epochs: 15 and 22.5)."""
    return tuple(round(fraction * train_epochs, 4) for fraction in recipe["lr_decay_fractions"])


def published_imagenet():
    """The classic ImageNet recipe (Goyal et al.) with its decay points in epochs: what a run of imported weights
    records (pretrained.py; it is never trained)."""
    imagenet = recipe(small_images=False, name="classic")
    return {**imagenet, "lr_decay_epochs": decay_epochs(imagenet, imagenet["train_epochs"])}
