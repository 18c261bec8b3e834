"""The large-image benchmark: the photograph folder it runs on, and `python -m data.benchmark` on it."""
import os

import numpy as np
import pytest
import support
import tensorflow as tf

from data.benchmark import photos


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("photos") / "photos")
    return out, photos.build(out, train=22, val=11, seed=1, log=lambda line: None)


def test_sizes_follow_imagenets_distribution():
    rng = np.random.default_rng(0)
    widths, heights = np.array([photos.draw_size(rng) for _ in range(20_000)]).T
    long_sides = np.maximum(widths, heights)
    # ImageNet's train split: about 400x350 px on average, mostly 500 px long, a 2,000-px-and-more tail.
    assert 380 < widths.mean() < 430 and 320 < heights.mean() < 370
    assert 0.35 < np.mean(long_sides == 500) < 0.45
    assert 0.005 < np.mean(long_sides >= 1200) < 0.015 and long_sides.max() <= 2600
    assert 0.2 < np.mean(heights > widths) < 0.3


def test_the_folder_holds_jpegs_of_every_photograph_at_the_drawn_sizes(photo_folder):
    out, summary = photo_folder
    names = sorted(os.path.splitext(os.path.basename(path))[0] for _, path in photos.SOURCES)
    assert sorted(os.listdir(os.path.join(out, "train"))) == names == sorted(os.listdir(os.path.join(out, "val")))
    files = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs]
    assert len(files) == summary.images == 33
    shapes = []
    for path in files:
        encoded = tf.io.read_file(path)
        assert tf.io.is_jpeg(encoded)
        shapes.append(tf.image.extract_jpeg_shape(encoded).numpy())
    heights, widths, channels = np.array(shapes).T
    assert (channels == 3).all() and 100 <= np.maximum(heights, widths).min() <= np.maximum(heights, widths).max() <= 2600
    assert (widths.mean(), heights.mean()) == pytest.approx((summary.mean_width, summary.mean_height))
    assert not any(name.startswith(".photos-") for name in os.listdir(os.path.dirname(out)))  # no temporary left


def test_the_same_seed_builds_the_same_folder(tmp_path, photo_folder):
    out, _ = photo_folder
    again = str(tmp_path / "again")
    photos.build(again, train=22, val=11, seed=1, log=lambda line: None)
    for d, _, files in os.walk(out):
        for f in files:
            with open(os.path.join(d, f), "rb") as a, open(os.path.join(again, os.path.relpath(d, out), f), "rb") as b:
                assert a.read() == b.read()


def test_benchmark_compares_ours_the_reference_and_decode_alone_on_the_folder(photo_folder):
    out, _ = photo_folder
    result = support.run("-m", "data.benchmark", f"--dataset=folder:{out}", "--image_size=64", "--batch_size=4",
                         "--steps=2", "--rounds=1")
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"folder:{out}: 22 training files, mean ")
    table = {line[:32].strip(): line[32:].split() for line in lines if line[:32].strip() in
             ("ours", "ours, normalized on the host", "reference", "decode only")}
    assert len(table) == 4 and all(float(v[0].replace(",", "")) > 0 for v in table.values())
    stages = [line for line in lines if line.startswith("  ") and " ms " in line]
    assert [s.split("  ")[1].strip() for s in stages] == ["read", "decode crop window", "resize, round to uint8",
                                                          "flip", "order, batch, prefetch"]
    assert lines[-1].startswith(f"folder:{out} training pipeline: ") and " per core " in lines[-1]


def test_photos_refuses_an_existing_folder_in_one_line(tmp_path):
    result = support.run("-m", "data.benchmark.photos", str(tmp_path), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: {tmp_path} exists; remove it or name a new folder"
