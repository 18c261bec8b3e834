"""Offline preparation (python -m data.prepare): checksum policy, no network, and the shared CIFAR-10 subset."""
import io
import os
import socket
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import checksums

from data import DataError, get_info, make_eval_dataset, make_train_dataset
from data import prepare
from data.prepare import archives
from support import ROOT as REPO

SUBSET = "/work/shared/data/cifar-10-subset-binary.tar.gz"


def _cifar10_archive(path, per_batch=2, num_test=3):
    """A tar.gz in the official cifar-10 binary layout. Example k (in file order) has label k % 10 and every
    red pixel k, green 100, blue 200."""
    def records(first, count):
        out = b""
        for k in range(first, first + count):
            out += bytes([k % 10]) + bytes([k]) * 1024 + bytes([100]) * 1024 + bytes([200]) * 1024
        return out

    files = {f"data_batch_{i + 1}.bin": records(i * per_batch, per_batch) for i in range(5)}
    files["test_batch.bin"] = records(0, num_test)
    files["batches.meta.txt"] = "\n".join(f"class{i}" for i in range(10)).encode() + b"\n"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return str(path)


class _NoNetwork:
    """Makes every way of opening a connection fail, and remembers attempts (in case a caller swallows it)."""

    def __init__(self, monkeypatch):
        self.attempts = []
        for owner, name in ((socket.socket, "connect"), (socket.socket, "connect_ex"),
                            (socket, "create_connection"), (socket, "getaddrinfo")):
            monkeypatch.setattr(owner, name, self._refuse(name))

    def _refuse(self, name):
        def refuse(*args, **kwargs):
            self.attempts.append((name, args[1:] if name.startswith("connect") else args))
            raise OSError("network disabled by test")
        return refuse


@pytest.fixture(scope="module")
def subset_dir(tmp_path_factory):
    """The shared subset archive prepared once (it takes a few seconds) with the network disabled."""
    if not os.path.exists(SUBSET):
        pytest.skip(f"{SUBSET} not available")
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        no_network = _NoNetwork(monkeypatch)
        prepare.prepare("cifar10", [SUBSET], data_dir, allow_unverified=True)
    assert no_network.attempts == []
    return data_dir


def test_unofficial_archive_is_refused_without_allow_unverified(tmp_path):
    archive = _cifar10_archive(tmp_path / "cifar-10-binary.tar.gz")
    with pytest.raises(DataError, match="--allow_unverified") as e:
        prepare.prepare("cifar10", [archive], str(tmp_path / "tfds"))
    assert "\n" not in str(e.value)
    assert not os.path.exists(tmp_path / "tfds" / "cifar10")


def test_unofficial_archive_is_prepared_offline_with_allow_unverified(tmp_path, monkeypatch):
    archive_dir = os.path.dirname(_cifar10_archive(tmp_path / "archives" / "cifar-10-binary.tar.gz"))
    no_network = _NoNetwork(monkeypatch)
    prepare.prepare("cifar10", [archive_dir], str(tmp_path / "tfds"), allow_unverified=True)
    assert no_network.attempts == []
    for split, count in (("train", 10), ("test", 3)):
        examples = list(tfds.load("cifar10", split=split, data_dir=str(tmp_path / "tfds")).as_numpy_iterator())
        assert len(examples) == count
        for ex in examples:  # every record became the image and label it holds
            k = int(ex["id"].decode().split("_")[1])
            assert ex["label"] == k % 10
            np.testing.assert_array_equal(ex["image"][0, 0], [k, 100, 200])
    builder = tfds.builder("cifar10", data_dir=str(tmp_path / "tfds"))
    assert builder.info.features["label"].names[:2] == ["class0", "class1"]
    # Prepared once, a second call neither needs nor checks the archive.
    assert prepare.prepare("cifar10", [], str(tmp_path / "tfds")) == builder.data_dir


def test_checksum_check_accepts_only_the_registered_checksum(tmp_path):
    archive = _cifar10_archive(tmp_path / "a.tar.gz")
    own = checksums.compute_url_info(archive)
    registered = checksums.UrlInfo(size=own.size, checksum=own.checksum, filename="cifar-10-binary.tar.gz")
    assert archives._verify(archive, registered, allow_unverified=False) is None
    other = checksums.UrlInfo(size=own.size, checksum="0" * 64, filename="cifar-10-binary.tar.gz")
    with pytest.raises(DataError, match="not the official cifar-10-binary.tar.gz"):
        archives._verify(archive, other, allow_unverified=False)
    accepted = archives._verify(archive, other, allow_unverified=True)
    assert (accepted.checksum, accepted.filename) == (own.checksum, "cifar-10-binary.tar.gz")


def test_archive_tfds_cannot_read_is_a_one_line_error(tmp_path):
    archive = str(tmp_path / "broken.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("something/else.bin"), io.BytesIO(b""))
    with pytest.raises(DataError, match="could not build cifar10") as e:
        prepare.prepare("cifar10", [archive], str(tmp_path / "tfds"), allow_unverified=True)
    assert "\n" not in str(e.value)


def test_imagenet_needs_both_archives(tmp_path):
    train = tmp_path / "ILSVRC2012_img_train.tar"
    train.write_bytes(b"")
    with pytest.raises(DataError, match="missing ILSVRC2012_img_val.tar"):
        prepare.prepare("imagenet2012", [str(train)], str(tmp_path / "tfds"))
    with pytest.raises(DataError, match="known: cifar10, cifar100, imagenet2012"):
        prepare.prepare("mnist", [str(train)], str(tmp_path / "tfds"))


def test_cli_prints_one_line_error_and_exits_1(tmp_path):
    archive = _cifar10_archive(tmp_path / "cifar-10-binary.tar.gz")
    result = subprocess.run(
        [sys.executable, "-m", "data.prepare", "cifar10", f"--archive={archive}", f"--data_dir={tmp_path}/tfds"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--allow_unverified" in errors[0] and archive in errors[0]
    assert "Traceback" not in result.stderr


def test_subset_prepares_into_a_plain_tfds_cifar10(subset_dir):
    counts = {s: sum(1 for _ in tfds.load("cifar10", split=s, data_dir=subset_dir)) for s in ("train", "test")}
    assert counts == {"train": 4068, "test": 1017}
    info = get_info("cifar10", data_dir=subset_dir)
    assert (info.num_train, info.num_eval, info.class_names[0]) == (4068, 1017, "airplane")


def test_subset_feeds_the_pipelines(subset_dir):
    info = get_info("cifar10", data_dir=subset_dir)
    images, labels = next(iter(make_train_dataset(info, data_dir=subset_dir, global_batch_size=64)))
    assert images.shape == (64, 32, 32, 3) and set(labels.numpy()) <= set(range(10))
    batches = list(make_eval_dataset(info, data_dir=subset_dir, global_batch_size=128))
    assert sum(float(b[2].numpy().sum()) for b in batches) == 1017
    # Real CIFAR pixels (unpadded, in eval) normalized with the CIFAR-10 constants: ~zero mean, ~unit std.
    images = np.concatenate([b[0] for b in batches])[:1017]
    assert np.all(np.abs(images.mean((0, 1, 2))) < 0.1) and np.all(np.abs(images.std((0, 1, 2)) - 1) < 0.1)


def test_in_a_log_there_are_no_progress_bars(tmp_path):
    # stderr is a pipe here, as in `docker logs`: tfds's carriage-return bars ("90263582 MiB/s") are off.
    archive = _cifar10_archive(tmp_path / "cifar-10-binary.tar.gz")
    result = subprocess.run(
        [sys.executable, "-m", "data.prepare", "cifar10", f"--archive={archive}", f"--data_dir={tmp_path}/tfds",
         "--allow_unverified"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and f"prepared cifar10 in {tmp_path}/tfds/cifar10/" in result.stdout
    assert "\r" not in result.stderr and "MiB/s" not in result.stderr and "it/s]" not in result.stderr, result.stderr
