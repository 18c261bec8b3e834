"""ImageNet's 1000 classes (ILSVRC 2012) in the label order of tfds' imagenet2012 (sorted WordNet ids), with
their human-readable names, and the DatasetInfo of a model that learned them, so that a run holding imported
ImageNet weights needs no ImageNet on disk. The names are the usual ILSVRC synonyms ("tench, Tinca tinca")."""
import functools
import os

from data.info import DatasetInfo

CLASSES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_classes.txt")  # wnid<TAB>name
NAME = "imagenet2012"
NUM_TRAIN, NUM_EVAL = 1_281_167, 50_000  # tfds imagenet2012: train, validation


@functools.cache
def classes():
    """((wnid, name), ...) for labels 0..999."""
    with open(CLASSES_FILE) as f:
        return tuple(tuple(line.rstrip("\n").split("\t")) for line in f)


def class_names():
    return tuple(name for _, name in classes())


def info(image_size, mean, std):
    """The DatasetInfo of an ImageNet classifier whose inputs are image_size px, normalized by mean / std."""
    return DatasetInfo(NAME, len(classes()), image_size, small_images=False, num_train=NUM_TRAIN,
                       num_eval=NUM_EVAL, train_split="train", eval_split="validation", class_names=class_names(),
                       mean=tuple(mean), std=tuple(std))
