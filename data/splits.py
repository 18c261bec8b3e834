"""Which examples are training, validation and test: a hash of each example's identity, never its position.

An example's identity is its path relative to the folder ("cat/001.jpg", "train/cat/001.jpg") or its tfds id
("cifar10-train.tfrecord-00000-of-00001__17": shard file and index in it). The first 8 bytes of BLAKE2b of
"salt:identity" (hashlib: plain Python, so that describing a dataset runs no TensorFlow op and a multi-worker
strategy can still be created after it) place it at a point of [0, 1):

    [0, test)                      test        (flat folders only: carved from the images themselves)
    [test, test + validation)      validation  (carved from the training split)
    [test + validation, 1)         train

An example's place depends on its identity alone, so adding files never moves an existing one between splits,
and every class contributes about the same fraction to each split (stratified in expectation: a class of n
images puts Binomial(n, fraction) of them in validation; the console prints the counts per class).
"""
import dataclasses
import hashlib
from typing import Sequence

import numpy as np

from data.info import DataError, DatasetInfo

SALT = "resnet_v2-split-1:"  # a new salt would re-deal every example; never change it for existing data
ROLES = ("train", "validation", "test")
MAX_HELD_OUT = 0.5           # validation + test together: at least half of the images train
DEFAULT_FRACTION, DEFAULT_MAX_IMAGES = 0.1, 10_000  # He et al.'s 45k/5k of CIFAR-10; ~10k of ImageNet's 1.28M
FLAT_TEST_FRACTION = 0.1
# Datasets whose default is no validation split: measured, the final checkpoint of a run on every training image
# beats the best-on-validation checkpoint of a run on 90 % of them (docs/training.md "A validation split for
# CIFAR?": ResNet-20, 30 epochs, the shared subset, 3 seeds). CIFAR-100 follows CIFAR-10 unmeasured.
NO_DEFAULT_VALIDATION = ("cifar10", "cifar100")


@dataclasses.dataclass(frozen=True)
class Carve:
    """The fractions of a source split held out: test (flat folders), then validation; the rest trains."""
    validation: float = 0.0
    test: float = 0.0

    def bounds(self, role):
        """[low, high) of the points of `role` in the source split."""
        low = {"test": 0.0, "validation": self.test, "train": self.test + self.validation}[role]
        high = {"test": self.test, "validation": self.test + self.validation, "train": 1.0}[role]
        return low, high


def source(info: DatasetInfo, role: str) -> tuple:
    """(the source split a role's examples come from, the Carve that selects them in it, or None: all of it)."""
    carve = Carve(info.validation_fraction, info.test_fraction)
    if role == "train":
        return info.train_split, carve if info.validation_fraction or info.test_fraction else None
    if role == "validation":
        if not info.has_validation:
            raise DataError(f"{info.name} has no validation split in this run (--validation_split=0)")
        return info.validation_split, carve if info.validation_split == info.train_split else None
    if role == "test":
        return info.eval_split, carve if info.test_fraction else None
    raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")


def positions(identities: Sequence[str]) -> np.ndarray:
    """The points in [0, 1) of identities (float64 [n])."""
    digests = b"".join(hashlib.blake2b((SALT + i).encode(), digest_size=8).digest() for i in identities)
    return np.frombuffer(digests, dtype=">u8").astype(np.float64) / 2.0 ** 64


def in_role(points, carve: Carve, role: str):
    """Boolean mask (numpy or tf) of the points that belong to `role`."""
    low, high = carve.bounds(role)
    return (points >= low) & (points < high)


def default_validation(name: str, num_train: int) -> float:
    """10 % of the training split, at most 10,000 images (a validation top-1 over 10,000 images has a standard
    error of at most 0.5 points; more would only take images from training); 0 for NO_DEFAULT_VALIDATION."""
    if name.split("/")[0].split(":")[0] in NO_DEFAULT_VALIDATION:
        return 0.0
    return min(DEFAULT_FRACTION, DEFAULT_MAX_IMAGES / max(num_train, 1))


def check_fraction(name: str, value: float) -> None:
    """Raises ValueError (one line) for a fraction outside [0, 0.5)."""
    if not 0 <= value < MAX_HELD_OUT:
        raise ValueError(f"--{name} must be at least 0 and below {MAX_HELD_OUT} (a fraction of the images, e.g. "
                         f"0.1; 0 turns it off), got {value:g}")
