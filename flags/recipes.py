"""The published recipes, as small diffs of one base (the CIFAR recipe of He et al. 2016)."""

BASE = {
    "batch_size": 128,
    "learning_rate": 0.1,          # at batch lr_batch_denominator; scaled linearly with the batch
    "lr_batch_denominator": 128,
    "momentum": 0.9,
    "weight_decay": 2e-4,
    "train_epochs": 182,           # 64k steps at batch 128 on CIFAR's 50k images
    "lr_decay_epochs": (91, 136),  # x0.1 at 32k and 48k steps
    "warmup_epochs": 0.0,
}

# ImageNet-style data (images larger than 64 px): Goyal et al. 2017, 90 epochs with 5 of warm-up.
LARGE_IMAGES = {
    "batch_size": 256,
    "lr_batch_denominator": 256,
    "weight_decay": 1e-4,
    "train_epochs": 90,
    "lr_decay_epochs": (30, 60, 80),
    "warmup_epochs": 5.0,
}


def recipe(small_images):
    return dict(BASE) if small_images else {**BASE, **LARGE_IMAGES}
