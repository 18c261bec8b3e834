"""Folder datasets: class mapping, image formats, unreadable files, the index cache, and layout errors."""
import logging
import os
import struct

import numpy as np
import pytest
import tensorflow as tf

from data import DataError, get_info, make_eval_dataset, make_train_dataset
from data import folder

RED, BLUE = (200, 30, 30), (30, 30, 200)


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _pixels(color, size=(8, 8)):
    return tf.constant(np.broadcast_to(np.array(color, np.uint8), (*size, 3)).copy())


def _bmp(color, width=8, height=8):
    """A 24-bit uncompressed BMP (TensorFlow can decode BMP but not encode it)."""
    row = bytes(reversed(color)) * width + b"\0" * ((4 - 3 * width % 4) % 4)  # BGR, rows padded to 4 bytes
    pixels = row * height
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def _make_folder(root, eval_name="test", size=(8, 8)):
    """cat/ images are red, dog/ images blue, in several formats; 6 train and 2 eval images."""
    for split, count in (("train", 3), (eval_name, 1)):
        for name, color in (("cat", RED), ("dog", BLUE)):
            for i in range(count):
                encoded = tf.io.encode_png(_pixels(color, size)) if i % 2 else tf.io.encode_jpeg(_pixels(color, size))
                _write(os.path.join(root, split, name, f"{i}.{'png' if i % 2 else 'jpg'}"), encoded.numpy())
    return root


def _eval_examples(info):
    batches = list(make_eval_dataset(info, global_batch_size=4))
    keep = np.concatenate([b[2] for b in batches]) > 0
    images = np.concatenate([b[0] for b in batches])[keep]
    return images * np.array(info.std) + np.array(info.mean), np.concatenate([b[1] for b in batches])[keep]


def test_class_names_come_from_sorted_folders_and_labels_follow_them(tmp_path):
    info = get_info(f"folder:{_make_folder(tmp_path / 'pets')}")
    assert info.class_names == ("cat", "dog") and info.num_classes == 2
    assert (info.num_train, info.num_eval, info.small_images, info.image_size) == (6, 2, True, 8)
    images, labels = _eval_examples(info)
    for image, label in zip(images, labels):  # red cats are label 0, blue dogs label 1
        np.testing.assert_allclose(image.mean((0, 1)), RED if label == 0 else BLUE, atol=3)
    assert sorted(labels.tolist()) == [0, 1]


def test_mean_and_std_are_computed_over_training_pixels(tmp_path):
    info = get_info(f"folder:{_make_folder(tmp_path / 'pets')}")
    # Half the training pixels are RED, half BLUE: mean is the midpoint, std half the distance.
    np.testing.assert_allclose(info.mean, [115, 30, 115], atol=1.5)
    np.testing.assert_allclose(info.std, [85, 1, 85], atol=1.5)  # std is floored at 1 for a constant channel


def test_grayscale_rgba_bmp_and_gif_become_rgb(tmp_path):
    root = _make_folder(tmp_path / "pets")
    _write(f"{root}/train/cat/gray.png", tf.io.encode_png(tf.fill([8, 8, 1], tf.constant(90, tf.uint8))).numpy())
    rgba = tf.concat([_pixels(RED), tf.fill([8, 8, 1], tf.constant(128, tf.uint8))], axis=-1)
    _write(f"{root}/train/cat/rgba.png", tf.io.encode_png(rgba).numpy())
    _write(f"{root}/test/cat/red.bmp", _bmp(RED))
    image_module = pytest.importorskip("PIL.Image")
    image_module.fromarray(np.full([8, 8, 3], BLUE, np.uint8)).save(f"{root}/test/dog/blue.gif")
    info = get_info(f"folder:{root}")
    assert (info.num_train, info.num_eval) == (8, 4)
    images, labels = _eval_examples(info)
    assert images.shape == (4, 8, 8, 3)
    for image, label in zip(images, labels):
        np.testing.assert_allclose(image.mean((0, 1)), RED if label == 0 else BLUE, atol=3)
    images, labels = next(iter(make_train_dataset(info, global_batch_size=8)))
    assert images.shape == (8, 8, 8, 3)


def test_unreadable_files_are_skipped_with_one_warning_or_refused_with_strict(tmp_path, caplog):
    root = _make_folder(tmp_path / "pets")
    _write(f"{root}/train/cat/notes.jpg", b"not an image")
    truncated = tf.io.encode_png(_pixels(RED)).numpy()[:40]
    _write(f"{root}/test/dog/truncated.png", truncated)
    _write(f"{root}/train/dog/readme.txt", b"ignored: not an image extension")
    os.symlink(tmp_path / "gone.png", f"{root}/train/dog/broken-link.png")
    with caplog.at_level(logging.WARNING):
        info = get_info(f"folder:{root}")
    assert (info.num_train, info.num_eval) == (6, 2)
    warnings = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1 and "skipped 3 unreadable" in warnings[0]
    with pytest.raises(DataError, match=r"train/cat/notes\.jpg") as e:
        get_info(f"folder:{root}", strict=True)
    assert "\n" not in str(e.value)


def test_large_images_use_image_size_and_random_resized_crops(tmp_path):
    root = _make_folder(tmp_path / "big", eval_name="val", size=(70, 90))
    info = get_info(f"folder:{root}", image_size=24)
    assert (info.small_images, info.image_size, info.eval_split) == (False, 24, "val")
    images, labels = next(iter(make_train_dataset(info, global_batch_size=6, deterministic=True)))
    assert images.shape == (6, 24, 24, 3) and sorted(labels.numpy().tolist()) == [0, 0, 0, 1, 1, 1]
    images, _ = _eval_examples(info)
    assert images.shape == (2, 24, 24, 3)


def test_index_is_cached_beside_the_data_and_rebuilt_when_files_change(tmp_path, monkeypatch):
    root = _make_folder(tmp_path / "pets")
    get_info(f"folder:{root}")
    assert os.path.exists(os.path.join(root, folder.CACHE_NAME))
    monkeypatch.setattr(folder, "_image_stats", lambda path: pytest.fail("decoded again despite the cache"))
    assert get_info(f"folder:{root}").num_train == 6
    monkeypatch.undo()
    _write(f"{root}/train/dog/new.png", tf.io.encode_png(_pixels(BLUE)).numpy())
    assert get_info(f"folder:{root}").num_train == 7


def test_pipeline_refuses_a_folder_changed_since_get_info(tmp_path):
    root = _make_folder(tmp_path / "pets")
    info = get_info(f"folder:{root}")
    _write(f"{root}/train/dog/new.png", tf.io.encode_png(_pixels(BLUE)).numpy())
    with pytest.raises(DataError, match="call get_info again"):
        make_train_dataset(info, global_batch_size=2)


def test_read_only_folder_caches_under_data_dir_and_says_so(tmp_path, monkeypatch, caplog):
    root = str(_make_folder(tmp_path / "pets"))
    write = folder._write_json

    def read_only_root(path, value):
        if path.startswith(root):
            raise PermissionError(f"read-only: {path}")
        write(path, value)

    monkeypatch.setattr(folder, "_write_json", read_only_root)
    with caplog.at_level(logging.WARNING):
        info = get_info(f"folder:{root}", data_dir=str(tmp_path / "tfds"))
    assert info.num_train == 6
    cached = os.listdir(tmp_path / "tfds" / "folder_index")
    assert len(cached) == 1 and any("read-only" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(folder, "_image_stats", lambda path: pytest.fail("decoded again despite the cache"))
    assert get_info(f"folder:{root}", data_dir=str(tmp_path / "tfds")).num_train == 6


def test_missing_split_folder_is_an_error_listing_what_is_there(tmp_path):
    root = tmp_path / "pets"
    _write(f"{root}/train/cat/0.png", tf.io.encode_png(_pixels(RED)).numpy())
    os.makedirs(root / "extra")
    with pytest.raises(DataError, match=r"no test/ \(or val/\) folder.*found: extra, train"):
        get_info(f"folder:{root}")


def test_folder_without_images_is_an_error(tmp_path):
    os.makedirs(tmp_path / "empty" / "train" / "cat")
    os.makedirs(tmp_path / "empty" / "test" / "cat")
    with pytest.raises(DataError, match="has no images in class folders.*classes found: cat"):
        get_info(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(DataError, match="does not exist"):
        get_info(f"folder:{tmp_path / 'nowhere'}")


def test_eval_class_missing_from_train_is_an_error(tmp_path):
    root = _make_folder(tmp_path / "pets")
    _write(f"{root}/test/bird/0.png", tf.io.encode_png(_pixels(RED)).numpy())
    with pytest.raises(DataError, match="bird"):
        get_info(f"folder:{root}")
