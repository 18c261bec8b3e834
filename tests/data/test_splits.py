"""The validation and test splits: carved by a hash of each example's identity, stable as a folder grows,
stratified in expectation, and refused in one line where they can't work."""
import os

import numpy as np
import pytest
import tensorflow as tf

from data import DataError, datasets, folder, get_info, splits


def _names(classes, per_class, start=0):
    return [f"c{c}/img_{i:05d}.jpg" for c in range(classes) for i in range(start, start + per_class)]


def _roles(names, carve):
    points = splits.positions(names)
    return {name: next(r for r in splits.ROLES if splits.in_role(p, carve, r)) for name, p in zip(names, points)}


def test_growth_moves_no_file_and_the_fractions_hold():
    carve = splits.Carve(validation=0.1, test=0.1)
    before = _roles(_names(10, 1000), carve)
    grown = _roles(_names(10, 1000) + _names(10, 100, start=1000), carve)  # 10 % more files
    assert all(grown[name] == role for name, role in before.items())
    for roles in (before, grown):
        share = {r: sum(v == r for v in roles.values()) / len(roles) for r in splits.ROLES}
        assert abs(share["validation"] - 0.1) < 0.01 and abs(share["test"] - 0.1) < 0.01, share
        # stratified in expectation: every class's validation share is near 10 % (1100 images: sd 0.9 points)
        per_class = [np.mean([roles[n] == "validation" for n in roles if n.startswith(f"c{c}/")]) for c in range(10)]
        assert max(abs(p - 0.1) for p in per_class) < 0.035, per_class


def test_describing_a_split_runs_no_tensorflow_op():
    # A MultiWorkerMirroredStrategy can only be created before TensorFlow's context starts, after get_info.
    import subprocess
    import sys
    code = ("from data import splits; from tensorflow.python.eager import context; "
            "splits.positions(['a', 'b']); assert context.context()._context_handle is None, 'initialized'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))


def test_tfds_ids_from_metadata_match_what_tfds_reads(cifar_subset_dir):
    import tensorflow_datasets as tfds
    builder = tfds.builder("cifar10", data_dir=cifar_subset_dir)
    read = builder.as_dataset(split="train", shuffle_files=False, read_config=tfds.ReadConfig(add_tfds_id=True))
    ids = [x["tfds_id"].decode() for x in read.take(5).as_numpy_iterator()]
    assert datasets.tfds_identities(builder, "train")[:5] == ids
    info = get_info("cifar10", cifar_subset_dir, validation_split=0.1)
    assert info.num_train + info.num_validation == 4068 and abs(info.num_validation / 4068 - 0.1) < 0.01
    assert info.num_eval == 1017
    # CIFAR's default is no validation split (measured: docs/training.md); other datasets hold 10 % out
    assert not get_info("cifar10", cifar_subset_dir, validation_split=None).has_validation
    assert splits.default_validation("oxford_flowers102", 1020) == 0.1
    assert splits.default_validation("imagenet2012", 1_281_167) == pytest.approx(10_000 / 1_281_167)
    labels = {role: np.array(datasets.load_split(info, role, cifar_subset_dir).records.map(lambda x, y: y)
                             .batch(5000).get_single_element()) for role in ("train", "validation")}
    assert len(labels["train"]) == info.num_train and len(labels["validation"]) == info.num_validation
    assert set(labels["validation"]) == set(range(10))  # every class is in it
    assert get_info("cifar10", cifar_subset_dir, validation_split=0).num_train == 4068


def _png(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(tf.io.encode_png(tf.fill([6, 6, 3], tf.constant(value, tf.uint8))).numpy())


def test_a_growing_flat_folder_keeps_every_file_in_its_split(tmp_path):
    root = tmp_path / "flat"
    for c in ("cat", "dog"):
        for i in range(100):
            _png(f"{root}/{c}/{i}.png", 40 * (c == "cat") + i)
    info = get_info(f"folder:{root}", validation_split=None)
    assert (info.train_split, info.test_fraction, info.validation_fraction) == ("all", 0.1, 0.1)
    assert info.num_train + info.num_validation + info.num_eval == 200
    before = {role: set(folder.read_split(str(root), "all", None, splits.Carve(0.1, 0.1), role)[0])
              for role in splits.ROLES}
    for c in ("cat", "dog"):
        for i in range(100, 110):
            _png(f"{root}/{c}/{i}.png", 7)
    get_info(f"folder:{root}", validation_split=None)
    after = {role: set(folder.read_split(str(root), "all", None, splits.Carve(0.1, 0.1), role)[0])
             for role in splits.ROLES}
    assert all(before[r] <= after[r] for r in splits.ROLES) and sum(map(len, after.values())) == 220


def test_the_layouts_say_where_validation_and_test_come_from(tmp_path):
    for layout in (("train", "test"), ("train", "test", "val"), ("train", "val")):
        root = tmp_path / "-".join(layout)
        for split in layout:
            for c in ("cat", "dog"):
                for i in range(100 if split == "train" else 3):
                    _png(f"{root}/{split}/{c}/{i}.png", i)
        info = get_info(f"folder:{root}", validation_split=None)
        expected = {("train", "test"): ("train", "test"), ("train", "test", "val"): ("val", "test"),
                    ("train", "val"): ("train", "val")}[layout]
        assert (info.validation_split, info.eval_split) == expected, layout
        assert info.num_eval == 6
        if info.validation_split == "val":  # its own val/: every image of it, and all of train/ trains
            assert (info.num_validation, info.num_train) == (6, 200)
        else:  # carved from train/'s 200 images: about 10 % of them, the rest trains
            assert 10 <= info.num_validation <= 30 and info.num_train + info.num_validation == 200
        assert get_info(f"folder:{root}", validation_split=0).has_validation is False


def test_bad_splits_are_one_line_errors(tmp_path):
    root = tmp_path / "flat"
    for i in range(40):
        _png(f"{root}/cat/{i}.png", i)
        _png(f"{root}/dog/{i}.png", 100 + i)
    for value in (0.9, -1, 0.5):
        with pytest.raises(DataError, match=r"^--validation_split must be at least 0 and below 0.5"):
            get_info(f"folder:{root}", validation_split=value)
    with pytest.raises(DataError, match=r"together they must stay below 50%"):
        get_info(f"folder:{root}", validation_split=0.3, test_split=0.3)
    _png(f"{root}/bird/0.png", 9)
    with pytest.raises(DataError, match=r"^class 'bird' of .* has 1 image\(s\), none of them in the (train|validation|test) split"):
        get_info(f"folder:{root}")
    os.remove(f"{root}/bird/0.png")
    os.rmdir(f"{root}/bird")
    single = tmp_path / "single"
    _png(f"{single}/cat/0.png", 1)
    with pytest.raises(DataError, match=r"has 1 class folder\(s\) \(cat\); a classifier needs at least 2"):
        get_info(f"folder:{single}")
    with pytest.raises(DataError, match=r"^--test_split carves a test split out of a flat folder"):
        get_info("cifar10", validation_split=None, test_split=0.1)


def test_a_tfds_dataset_with_its_own_validation_split_uses_it(tmp_path):
    from data import make_eval_dataset
    from support import mock_tfds
    with mock_tfds(tmp_path, "oxford_flowers102", num_examples=6, splits=("train", "validation", "test")):
        info = get_info("oxford_flowers102", image_size=32, validation_split=None)
        assert (info.validation_split, info.num_validation, info.eval_split, info.num_train) == (
            "validation", 6, "test", 6)
        weights = [b[2] for b in make_eval_dataset(info, global_batch_size=4, split="validation")]
    assert float(sum(w.numpy().sum() for w in weights)) == 6
