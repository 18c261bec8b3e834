"""tfds datasets through get_info and the pipelines, on tfds.testing.mock_data; errors for unusable names."""
import socket
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from data import DataError, get_info, make_eval_dataset, make_train_dataset
from data import datasets
from support import mock_tfds


@pytest.mark.parametrize("name, splits, image_size, num_classes, small", [
    ("cifar10", ("train", "test"), None, 10, True),
    ("cifar100", ("train", "test"), None, 100, True),
    ("imagenet2012", ("train", "validation"), 40, 1000, False),
])
def test_mock_tfds_datasets_give_normalized_batches(tmp_path, name, splits, image_size, num_classes, small):
    with mock_tfds(tmp_path, name, num_examples=6, splits=splits):
        info = get_info(name, image_size=image_size)
        size = image_size or 32
        assert (info.num_classes, info.small_images, info.image_size) == (num_classes, small, size)
        assert (info.num_train, info.num_eval, info.eval_split) == (6, 6, splits[1])
        # Normalized uint8 pixels lie between (0 - mean) / std and (255 - mean) / std in each channel.
        low = (0 - np.array(info.mean)) / np.array(info.std)
        high = (255 - np.array(info.mean)) / np.array(info.std)
        images, labels = next(iter(make_train_dataset(info, global_batch_size=4, deterministic=True)))
        assert images.shape == (4, size, size, 3) and images.dtype == tf.float32 and labels.dtype == tf.int32
        assert np.all(images >= low - 1e-4) and np.all(images <= high + 1e-4)
        assert np.all((labels >= 0) & (labels < num_classes))
        batches = list(make_eval_dataset(info, global_batch_size=4))
    assert [b[0].shape for b in batches] == [(4, size, size, 3)] * 2
    weights = np.concatenate([b[2] for b in batches])
    assert weights.tolist() == [1.0] * 6 + [0.0] * 2
    eval_images = np.concatenate([b[0] for b in batches])[:6]
    assert np.all(eval_images >= low - 1e-4) and np.all(eval_images <= high + 1e-4)


def test_cifar_uses_its_own_normalization_constants(tmp_path):
    with mock_tfds(tmp_path, "cifar100", num_examples=2):
        info = get_info("cifar100")
    assert info.mean == pytest.approx((129.30, 124.07, 112.43)) and info.std == pytest.approx((68.17, 65.39, 70.42))


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(DataError) as e:
        get_info("cifar11")
    message = str(e.value)
    assert "\n" not in message and "cifar10" in message and "folder:" in message and "imagenet2012" in message


def test_dataset_without_image_label_features_is_refused():
    with pytest.raises(DataError, match="image-classification"):
        get_info("glue/cola")


def test_unprepared_dataset_without_network_names_the_prepare_command(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "_reachable", lambda host: False)
    with pytest.raises(DataError) as e:
        get_info("cifar10", data_dir=str(tmp_path))
    assert "python -m data.prepare cifar10" in str(e.value) and "cifar-10-binary.tar.gz" in str(e.value)
    assert str(tmp_path) in str(e.value)


def test_imagenet_is_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "_reachable", pytest.fail)  # a manual dataset must not even look
    with pytest.raises(DataError, match="ILSVRC2012_img_train.tar.*python -m data.prepare imagenet2012"):
        get_info("imagenet2012", data_dir=str(tmp_path))


def test_reachable_dataset_is_downloaded_by_tfds(tmp_path, monkeypatch):
    calls = []

    def download_and_prepare(self, *args, **kwargs):
        calls.append(self.name)
        raise RuntimeError("stop here")

    monkeypatch.setattr(datasets, "_reachable", lambda host: host == "www.cs.toronto.edu")
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", download_and_prepare)
    with pytest.raises(RuntimeError, match="stop here"):
        get_info("cifar10", data_dir=str(tmp_path))
    assert calls == ["cifar10"]


def test_reachability_check_gives_up_quickly_when_the_network_hangs(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(3)  # a name lookup that hangs, then fails as a real one would
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.monotonic()
    assert not datasets._reachable("example.invalid", timeout=0.3)
    assert time.monotonic() - start < 2
