"""What the rest of the trainer knows about a dataset: DatasetInfo, DataError and the normalization constants."""
import dataclasses
from typing import Optional

# Per-channel (R, G, B) mean and std in [0, 255] pixel units, over every pixel of the training split.
# CIFAR values are the usual ones (mean 0.4914/0.4822/0.4465, std 0.2470/0.2435/0.2616 times 255 for
# CIFAR-10); ImageNet's are the torchvision / Keras ones. Other tfds datasets use the ImageNet constants;
# folder datasets compute theirs once and cache them beside the images.
NORMALIZATION = {
    "cifar10": ((125.31, 122.95, 113.87), (62.99, 62.09, 66.70)),
    "cifar100": ((129.30, 124.07, 112.43), (68.17, 65.39, 70.42)),
    "imagenet2012": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
}
DEFAULT_NORMALIZATION = NORMALIZATION["imagenet2012"]

# Images whose longer side is at most this many pixels get CIFAR-style preprocessing (pad + crop + flip).
SMALL_IMAGE_MAX_SIDE = 64
DEFAULT_LARGE_IMAGE_SIZE = 224


class DataError(Exception):
    """A one-line, user-facing problem with the data that says what to do; entry points print it and exit 1."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str  # 'cifar10', 'imagenet2012', 'oxford_flowers102', 'folder:/abs/path'
    num_classes: int
    image_size: int  # model input size in pixels (square)
    small_images: bool  # source images <= 64 px: CIFAR-style preprocessing
    num_train: int
    num_eval: int  # the test split's examples
    train_split: str  # the source split that training examples come from ('train'; a flat folder: 'all')
    eval_split: str  # the test split's source: 'test', else 'validation' (folders: test/ else val/; flat: 'all')
    class_names: tuple
    mean: tuple  # per-channel, [0, 255] units
    std: tuple
    # The validation split (data/splits.py): '' none, the dataset's own ('validation', a folder's 'val'), or
    # train_split itself when it is carved from the training examples by hash.
    validation_split: str = ""
    num_validation: int = 0
    validation_fraction: float = 0.0  # of train_split, when carved
    test_fraction: float = 0.0        # of train_split, when the test split is carved too (flat folders)
    # Pre-resized data (python -m data.prepare ... --max_side=N, data/prepare/shrink.py): the longest side in pixels its
    # training images were re-encoded to, the same for its eval splits (None: at full size, the default), their JPEG
    # quality and the dataset they were made from. None / "" for data as published.
    max_side: Optional[int] = None
    eval_max_side: Optional[int] = None
    resized_quality: Optional[int] = None
    resized_from: str = ""

    @property
    def has_validation(self):
        return bool(self.validation_split)


# The marker a pre-resized dataset carries (a folder's root, a tfds dataset's version directory): JSON written by
# data/prepare/shrink.py, whose fields are what DatasetInfo records of it.
RESIZED_MARKER = "max_side.json"
RESIZED_FORMAT = "resnet_v2 pre-resized dataset"


def resized_fields(marker: Optional[dict]) -> dict:
    """The DatasetInfo fields of a pre-resized dataset's marker (None: data as published)."""
    if not marker:
        return {}
    return {"max_side": marker["max_side"], "eval_max_side": marker.get("eval_max_side"),
            "resized_quality": marker["quality"], "resized_from": marker["source"]}
