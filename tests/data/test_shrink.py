"""Pre-resized data (data/prepare/shrink.py, python -m data.prepare ... --max_side=N) on real photographs: scikit-image's
and scikit-learn's sample images, re-encoded as JPEG quality 90 at a few sizes around N."""
import io
import json
import os
import re
import subprocess
import sys
import tarfile

import numpy as np
import PIL.Image
import pytest
import skimage.data
import sklearn.datasets
import tensorflow as tf
import tensorflow_datasets as tfds

from data import DataError, describe_splits, folder, get_info, prepare
from data.prepare import shrink
from support import ROOT, make_config
from training.rundir import run_dir

N = 96
PHOTOS = [os.path.join(os.path.dirname(skimage.data.__file__), f)
          for f in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg",
                    "motorcycle_left.png", "retina.jpg")]
PHOTOS += [os.path.join(os.path.dirname(sklearn.datasets.__file__), "images", f) for f in ("china.jpg", "flower.jpg")]
# (width, height): landscape, portrait, odd sides (rounding), already small (kept), exactly N (kept)
TRAIN_SIZES = [(180, 120), (120, 170), (151, 97), (90, 60), (N, 50)]


def _photo(index, size, fmt="JPEG"):
    image = PIL.Image.open(PHOTOS[index % len(PHOTOS)]).convert("RGB").resize(size, PIL.Image.LANCZOS)
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _imagenet_layout(root):
    """train/<class>/*.JPEG and val/<class>/*.JPEG (val/ is the test split), one PNG larger than N in train."""
    for c, name in enumerate(("n01440764", "n01443537")):
        for i, size in enumerate(TRAIN_SIZES):
            _write(os.path.join(root, "train", name, f"{name}_{i}.JPEG"), _photo(c * 5 + i, size))
        _write(os.path.join(root, "val", name, f"val_{c}.JPEG"), _photo(c + 3, (200, 150)))
    _write(os.path.join(root, "train", "n01443537", "big.png"), _photo(8, (140, 100), "PNG"))
    return str(root)


def _files(root):
    return {os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(root) for f in files if f.lower().endswith((".jpeg", ".jpg", ".png"))}


def _size(encoded):
    return PIL.Image.open(io.BytesIO(encoded)).size


@pytest.fixture(scope="module")
def shrunk(tmp_path_factory):
    source = _imagenet_layout(tmp_path_factory.mktemp("imagenet"))
    lines = []
    output = shrink.shrink_folder(source, N, out=lambda *a, **k: lines.append(a[0]))
    return source, output, lines


def test_train_images_fit_max_side_with_their_aspect_ratio_and_small_ones_keep_their_bytes(shrunk):
    source, output, _ = shrunk
    before, after = _files(source), _files(output)
    assert sorted(before) == sorted(after)  # the same names in the same class folders
    train = [rel for rel in before if rel.startswith("train")]
    resized = 0
    for rel in train:
        (w, h), (w2, h2) = _size(before[rel]), _size(after[rel])
        if max(w, h) <= N:
            assert after[rel] == before[rel], rel
            continue
        resized += 1
        assert max(w2, h2) == N and (w2, h2) == (round(w * N / max(w, h)), round(h * N / max(w, h))), rel
        assert tf.io.is_jpeg(after[rel]).numpy(), rel  # big.png too: re-encoded as JPEG under its own name
    assert resized == 7
    # The same pixels as PIL's Lanczos of the photo, less the output's JPEG error (~3-4 of 255 here): no flip, no
    # channel swap, no shift (each of those is 20 or more).
    rel = "train/n01440764/n01440764_0.JPEG"
    ours = np.asarray(PIL.Image.open(io.BytesIO(after[rel])), np.float64)
    pil = np.asarray(PIL.Image.open(io.BytesIO(before[rel])).resize((N, 64), PIL.Image.LANCZOS), np.float64)
    assert np.abs(ours - pil).mean() < 8


def test_resizing_is_antialiased():
    # 1-px black and white columns, lossless: an antialiased 4x reduction is an even grey; sampling without a
    # filter (nearest, or bilinear without antialias) keeps stripes of 0 and 255.
    stripes = np.zeros([300, 4 * N, 3], np.uint8)
    stripes[:, ::2] = 255
    out = shrink.shrink_fn(N, 90)(tf.io.encode_png(stripes))
    image = tf.io.decode_jpeg(out).numpy().astype(np.float64)
    assert image.shape == (75, N, 3) and abs(image.mean() - 127.5) < 3 and image[2:-2, 2:-2].std() < 3


def test_eval_split_stays_untouched_and_labels_and_class_order_are_identical(shrunk):
    source, output, _ = shrunk
    before, after = _files(source), _files(output)
    assert all(after[rel] == before[rel] for rel in before if rel.startswith("val"))
    for split in ("train", "val"):
        paths, labels = folder.read_split(source, split, None)
        paths2, labels2 = folder.read_split(output, split, None)
        assert [os.path.relpath(p, source) for p in paths] == [os.path.relpath(p, output) for p in paths2]
        assert labels == labels2
    assert get_info(f"folder:{output}").class_names == get_info(f"folder:{source}").class_names


def test_dataset_info_config_json_and_start_up_line_record_what_a_run_trained_on(shrunk, tmp_path):
    source, output, lines = shrunk
    info = get_info(f"folder:{output}")
    assert (info.max_side, info.eval_max_side, info.resized_quality, info.resized_from) == (N, None, 90, source)
    assert get_info(f"folder:{source}").max_side is None
    marker = json.load(open(os.path.join(output, "max_side.json")))
    assert marker["train"]["resized"] == 7 and marker["train"]["kept"] == 4 and marker["full_size_images"] == 2
    assert any(f"at most {N} px" in line and "eval splits at full size" in line for line in describe_splits(info))
    run_dir.write_config(make_config(dataset=f"folder:{output}", model_dir=str(tmp_path)), info, "test")
    assert json.load(open(tmp_path / "config.json"))["dataset"]["max_side"] == N
    assert run_dir.read_dataset_info(str(tmp_path)) == info
    assert lines[-1].startswith("resized: 7 images re-encoded, 4 already small") and " MB -> " in lines[-1]


def test_rerun_keeps_it_and_bad_input_is_one_line_that_says_what_to_do(shrunk, tmp_path):
    source, output, _ = shrunk
    assert shrink.shrink_folder(source, N) == output  # the same settings: kept as it is
    cases = [
        (dict(max_side=16), "at least 32"),
        (dict(max_side=N, quality=95), "other settings (quality=90)"),  # its own output, other settings
        (dict(max_side=N, output=str(tmp_path)), "is not a pre-resized dataset"),
        (dict(max_side=N, output=os.path.join(source, "small")), "lies inside the dataset"),
    ]
    for kwargs, expected in cases:
        with pytest.raises(DataError) as e:
            shrink.shrink_folder(source, output=kwargs.pop("output", None), **kwargs)
        assert expected in str(e.value) and "\n" not in str(e.value)
    broken = _imagenet_layout(tmp_path / "broken")
    _write(os.path.join(broken, "train", "n01440764", "zz.JPEG"), b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(DataError, match=r"cannot decode image train/n01440764/zz.JPEG .*remove or fix it") as e:
        shrink.shrink_folder(broken, N)
    assert "\n" not in str(e.value)
    assert sorted(os.listdir(tmp_path)) == ["broken"]  # neither an output nor a partial one


def test_resize_eval_shrinks_the_eval_split_too_and_says_so(shrunk, tmp_path):
    source, _, _ = shrunk
    output = shrink.shrink_folder(source, N, str(tmp_path / "all"), resize_eval=True, out=lambda *a, **k: None)
    assert all(max(_size(data)) == N for rel, data in _files(output).items() if rel.startswith("val"))
    info = get_info(f"folder:{output}")
    assert (info.max_side, info.eval_max_side) == (N, N)
    assert any("accuracy is on resized images" in line for line in describe_splits(info))


def test_flat_folder_keeps_its_test_carve_at_full_size(tmp_path):
    source = tmp_path / "flat"
    for c in ("a", "b"):
        for i in range(12):
            _write(str(source / c / f"{i}.jpg"), _photo(i, (150, 110)))
    output = shrink.shrink_folder(str(source), N, str(tmp_path / "out"), out=lambda *a, **k: None)
    info = get_info(f"folder:{output}")
    assert info.test_fraction == 0.1 and info.max_side == N
    before, after = _files(str(source)), _files(output)
    test, _ = folder.read_split(output, folder.FLAT, None, carve=shrink.splits.Carve(test=0.1), role="test")
    test = {os.path.relpath(p, output) for p in test}
    assert test and all(after[rel] == before[rel] for rel in test)
    assert all(max(_size(after[rel])) == N for rel in after if rel not in test)
    with pytest.raises(DataError, match="--test_split=0.1 or less"):
        get_info(f"folder:{output}", test_split=0.2)


def test_command_line_shows_progress_and_a_summary_through_a_pipe(tmp_path):
    source = _imagenet_layout(tmp_path / "src")
    result = subprocess.run([sys.executable, "-m", "data.prepare", f"folder:{source}", f"--max_side={N}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("7 images re-encoded, 4 already small" in line for line in lines)
    assert lines[-1] == f"prepared {source}_max{N}: train on it with --dataset=folder:{source}_max{N}"


def test_progress_lines_count_images_rate_and_eta():
    lines = []
    progress = shrink.Progress("resized", 4, out=lambda line, flush: lines.append((line, flush)), every=0)
    for resized in (True, True, False):
        progress.update(1000, 400 if resized else 1000, resized)
    assert all(flush for _, flush in lines)
    assert re.fullmatch(r"resized: 3/4 \(75%\) images, \d+ images/s, ETA \d+:\d\d:\d\d", lines[-1][0])
    assert progress.summary().startswith("resized: 2 images re-encoded, 1 already small and kept as they were; "
                                         "0.0 MB -> 0.0 MB in ")


def _tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))


def _ilsvrc_archives(directory, broken=False):
    """ILSVRC2012_img_train.tar (a tar of per-class tars) and ILSVRC2012_img_val.tar in the official layouts, with
    a few photos each. tfds labels the val images in sorted name order from its validation_labels.txt."""
    train = {}
    for c, wnid in enumerate(("n01440764", "n01443537")):
        images = {f"{wnid}_{i}.JPEG": _photo(c * 3 + i, size) for i, size in enumerate(TRAIN_SIZES[1:4])}
        if broken and c == 1:
            images[f"{wnid}_9.JPEG"] = b"\xff\xd8\xff\xe0 not a jpeg"
        _tar(os.path.join(directory, f"{wnid}.tar"), images)
        train.update(images)
    _tar(os.path.join(directory, "ILSVRC2012_img_train.tar"),
         {f"{w}.tar": open(os.path.join(directory, f"{w}.tar"), "rb").read() for w in ("n01440764", "n01443537")})
    val = {f"ILSVRC2012_val_{i:08d}.JPEG": _photo(i + 5, (200, 150)) for i in (1, 2, 3)}
    _tar(os.path.join(directory, "ILSVRC2012_img_val.tar"), val)
    return train, val


def test_imagenet2012_from_its_archives_with_max_side_resizes_train_only(tmp_path):
    archives = tmp_path / "archives"
    archives.mkdir()
    train, val = _ilsvrc_archives(str(archives))
    data_dir = str(tmp_path / "tfds")
    prepare.prepare("imagenet2012", [str(archives)], data_dir, allow_unverified=True, max_side=N)
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    read = lambda split: {ex["file_name"].decode(): (ex["image"], ex["label"]) for ex in tfds.as_numpy(  # noqa: E731
        builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()}))}
    stored, names = read("train"), builder.info.features["label"].names
    assert sorted(stored) == sorted(train)
    for name, (encoded, label) in stored.items():
        assert names[label] == name.split("_")[0]
        w, h = _size(train[name])
        if max(w, h) <= N:
            assert encoded == train[name], name
        else:
            assert _size(encoded) == (round(w * N / max(w, h)), round(h * N / max(w, h))), name
    labels = ("n01751748", "n09193705", "n02105855")  # the first lines of tfds' validation_labels.txt
    assert {k: (v[0], names[v[1]]) for k, v in read("validation").items()} == {
        name: (val[name], labels[i]) for i, name in enumerate(sorted(val))}
    info = get_info("imagenet2012", data_dir, validation_split=0)
    assert (info.max_side, info.eval_max_side, info.resized_quality) == (N, None, 90)
    assert info.resized_from == str(archives / "ILSVRC2012_img_train.tar")
    assert json.load(open(os.path.join(builder.data_dir, "max_side.json")))["train"]["resized"] == 4
    for max_side in (None, 128):
        with pytest.raises(DataError, match=f"holds imagenet2012 prepared with --max_side={N} --quality=90; pass "
                                            "another --data_dir"):
            prepare.prepare("imagenet2012", [str(archives)], data_dir, allow_unverified=True, max_side=max_side)
    with pytest.raises(DataError, match="leave --max_side out"):
        prepare.prepare("cifar10", [str(archives)], data_dir, max_side=N)


def test_imagenet2012_with_an_unreadable_train_image_is_one_line_and_leaves_no_dataset(tmp_path):
    archives = tmp_path / "archives"
    archives.mkdir()
    _ilsvrc_archives(str(archives), broken=True)
    data_dir = tmp_path / "tfds"
    with pytest.raises(DataError) as e:
        prepare.prepare("imagenet2012", [str(archives)], str(data_dir), allow_unverified=True, max_side=N)
    assert str(e.value).startswith("cannot decode image n01443537_9.JPEG of ") and "\n" not in str(e.value)
    assert not tfds.builder("imagenet2012", data_dir=str(data_dir)).is_prepared()
    assert [f for _, _, files in os.walk(data_dir) for f in files if "tfrecord" in f or f.endswith(".json")] == []
