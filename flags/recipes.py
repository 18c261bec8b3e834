"""The training recipes, as small diffs of one base (the CIFAR recipe of He et al. 2016): `classic` is the
papers' (base + LARGE_IMAGES for ImageNet-like data), `modern` adds what today's ResNet numbers are trained with
(MODERN, then MODERN_SMALL or MODERN_LARGE). Explicit flags override any of them."""

BASE = {
    "batch_size": 128,
    "learning_rate": 0.1,          # at batch lr_batch_denominator; scaled linearly with the batch
    "lr_batch_denominator": 128,
    "momentum": 0.9,
    "weight_decay": 2e-4,
    "train_epochs": 182,           # 64k steps at batch 128 on CIFAR's 50k images
    "lr_decay_fractions": (0.5, 0.75),  # of the run: x0.1 at 32k and 48k of 64k steps (epochs 91, 136.5 of 182)
    "warmup_epochs": 0.0,
    "lr_schedule": "piecewise",
    "label_smoothing": 0.0,
    "ema_decay": 0.0,              # 0: no weight EMA
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


# "ResNet strikes back"-style (Wightman et al. 2021; timm's and the Model Garden's vision configs), kept to what
# a plain SGD trainer runs: cosine decay, label smoothing, a weight EMA.
MODERN = {
    "lr_schedule": "cosine",
    "label_smoothing": 0.1,
    "ema_decay": 0.9999,
}
# Small images: nothing more. On the shared CIFAR subset at 30 epochs (README, Recipes) cutout 16 cost 3.9 points,
# mixup + cutmix 2.1 and RandAugment 11.7: regularizers for budgets of hundreds of epochs, not tens.
MODERN_SMALL = {}
# Large images: 5 warm-up epochs (already the large-image base), RandAugment m9 n2, mixup 0.2 / cutmix 1.0 half
# the batches each (timm's defaults).
MODERN_LARGE = {
    "randaugment_layers": 2,
    "randaugment_magnitude": 9.0,
    "mixup_alpha": 0.2,
    "cutmix_alpha": 1.0,
}
RECIPES = ("classic", "modern")
DEFAULT_RECIPE = "classic"


def recipe(small_images, name=DEFAULT_RECIPE):
    base = dict(BASE) if small_images else {**BASE, **LARGE_IMAGES}
    if name == "modern":
        base.update({**MODERN, **(MODERN_SMALL if small_images else MODERN_LARGE)})
    return base


def decay_epochs(recipe, train_epochs):
    """A piecewise schedule's decay points, in epochs of this run: the recipe's fractions of its length, so that a
    run shortened with --train_epochs still decays (at 30 epochs: 15 and 22.5)."""
    return tuple(round(fraction * train_epochs, 4) for fraction in recipe["lr_decay_fractions"])


def published_imagenet():
    """The classic ImageNet recipe (Goyal et al.) with its decay points in epochs: what a run of imported weights
    records (pretrained.py; it is never trained)."""
    imagenet = recipe(small_images=False, name="classic")
    return {**imagenet, "lr_decay_epochs": decay_epochs(imagenet, imagenet["train_epochs"])}
