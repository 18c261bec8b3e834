"""Model selection reads the validation split only; the test split is evaluated once, at the end: the real
train.py and eval.py on folders of real CIFAR-10 images (the shared subset written out as PNGs)."""
import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from support import run, snapshot

PER_CLASS = {"train": 100, "test": 30}  # of the subset's 10 classes: 1000 training and 300 test images


def args(root, model_dir, *extra):
    # 900 training images at batch 32: 28 steps per epoch, evaluated every 7 steps; float32 and --deterministic,
    # so that two runs that read the same training and validation images end bit for bit the same.
    return (f"--dataset=folder:{root}", f"--model_dir={model_dir}", "--depth=8", "--batch_size=32",
            "--train_steps=42", "--epochs_between_evals=0.25", "--steps_per_loop=7", "--log_every_steps=7",
            "--keep_best=2", "--deterministic", "--dtype=float32", "--precise_bn_examples=256", *extra)


@pytest.fixture(scope="module")
def folders(cifar_subset_dir, tmp_path_factory):
    """train/<class>/ + test/<class>/ PNGs, the same with every test image moved to the next class's folder
    (poisoned test labels), and the flat <class>/ layout of all of them."""
    base = tmp_path_factory.mktemp("folders")
    builder = tfds.builder("cifar10", data_dir=cifar_subset_dir)
    names = builder.info.features["label"].names
    for split in ("train", "test"):
        counts = [0] * len(names)
        for example in builder.as_dataset(split=split, shuffle_files=False).as_numpy_iterator():
            label = int(example["label"])
            if counts[label] == PER_CLASS[split]:
                continue
            counts[label] += 1
            png = tf.io.encode_png(example["image"]).numpy()
            i = counts[label]
            for root, folder in (("clean", f"{split}/{names[label]}"), ("flat", names[label]),
                                 ("poisoned", f"{split}/{names[(label + 1) % 10] if split == 'test' else names[label]}")):
                path = base / root / folder / f"{split}_{i:03d}.png"
                os.makedirs(path.parent, exist_ok=True)
                path.write_bytes(png)
    return {k: str(base / k) for k in ("clean", "poisoned", "flat")}


@pytest.fixture(scope="module")
def clean_and_poisoned(folders, tmp_path_factory):
    runs = {}
    for name in ("clean", "poisoned"):
        model_dir = str(tmp_path_factory.mktemp(name))
        runs[name] = model_dir, run("train.py", *args(folders[name], model_dir, "--validation_split=0.1")).stdout
    return runs


def best_json(model_dir):
    with open(os.path.join(model_dir, "best", "best.json")) as f:
        record = json.load(f)
    for entry in record["checkpoints"]:
        entry["checkpoint"] = os.path.basename(entry["checkpoint"])
    return record


def test_poisoned_test_labels_change_no_choice_only_the_test_numbers(clean_and_poisoned):
    (clean_dir, clean_out), (poisoned_dir, poisoned_out) = clean_and_poisoned["clean"], clean_and_poisoned["poisoned"]
    clean, poisoned = best_json(clean_dir), best_json(poisoned_dir)
    assert clean["split"] == "validation" and clean["metric"] == "top_1" and len(clean["checkpoints"]) == 2
    assert clean == poisoned  # the same steps, weights (raw / EMA) and validation metrics were chosen
    evals = [re.sub(r" in [\d.]+ s\)", ")", line) for line in clean_out.splitlines() if line.startswith("eval at step")]
    assert evals == [re.sub(r" in [\d.]+ s\)", ")", line) for line in poisoned_out.splitlines()
                     if line.startswith("eval at step")]
    assert len(evals) == 6 and all("validation examples" in line for line in evals)
    clean_final, poisoned_final = clean_out.strip().splitlines()[-1], poisoned_out.strip().splitlines()[-1]
    test_top_1 = lambda line: float(line.split("test top-1 ")[1].split()[0])  # noqa: E731
    assert test_top_1(clean_final) > 0.15 and test_top_1(poisoned_final) < test_top_1(clean_final) - 0.05
    for name in ("ckpt-42", os.path.join("best", clean["checkpoints"][0]["checkpoint"])):
        a, b = (tf.train.load_checkpoint(os.path.join(d, name)) for d in (clean_dir, poisoned_dir))
        for variable in a.get_variable_to_shape_map():
            assert np.array_equal(a.get_tensor(variable), b.get_tensor(variable)), variable


def test_the_final_line_and_metrics_json_report_both_checkpoints_on_test(clean_and_poisoned):
    model_dir, out = clean_and_poisoned["clean"]
    best = best_json(model_dir)["checkpoints"][0]
    final_line = out.strip().splitlines()[-1]
    assert final_line.startswith("final: step 42  test top-1 ") and "(final checkpoint);  best on validation: " \
        f"step {best['step']} ({best['weights']} weights, validation top-1 {best['top_1']:.4f}) test top-1 " in final_line
    with open(os.path.join(model_dir, "eval", "metrics.json")) as f:
        results = json.load(f)
    assert results["final"]["split"] == results["best_on_validation"]["split"] == "test"
    assert results["final"]["num_examples"] == results["best_on_validation"]["num_examples"] == 300
    assert results["best_on_validation"]["step"] == best["step"]
    assert f"test top-1 {results['final']['top_1']:.4f}" in final_line
    # eval.py, by default, takes the checkpoint chosen on validation, says so, and reproduces its test number
    said = run("eval.py", f"--model_dir={model_dir}").stdout.splitlines()
    assert said[0].startswith(f"step {best['step']}: top-1 {results['best_on_validation']['top_1']:.4f}")
    assert said[1] == (f"checkpoint {model_dir}/best/ckpt-{best['step']}: the best validation top-1 "
                       f"({best['top_1']:.4f}, {best['weights']} weights) of the evaluations during training")


def test_a_changed_split_on_resume_is_refused_in_one_line(clean_and_poisoned, folders):
    model_dir, _ = clean_and_poisoned["clean"]
    before = snapshot(model_dir)
    result = run("train.py", *args(folders["clean"], model_dir, "--validation_split=0.2", "--train_steps=60"),
                 check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {model_dir} holds a validation split of --validation_split=0.1, not a validation split of "
        "--validation_split=0.2; leave --validation_split and --test_split out to resume it with its own, or start a "
        "new --model_dir")
    assert snapshot(model_dir) == before


def test_a_flat_folder_is_split_by_hash_and_trains(folders, tmp_path):
    out = run("train.py", *args(folders["flat"], tmp_path, "--train_steps=14")).stdout
    split_line = next(line for line in out.splitlines() if line.startswith(f"folder:{folders['flat']}: train "))
    assert "(80% of all by hash), validation" in split_line and "(10% of all by hash), test" in split_line
    per_class = [line for line in out.splitlines() if line.startswith("  ") and ": train " in line]
    assert len(per_class) == 10 and all("validation " in line and "test " in line for line in per_class)
    assert sum(int(line.split("train ")[1].split(",")[0]) for line in per_class) == \
        int(split_line.split("train ")[1].split()[0].replace(",", ""))
    assert best_json(str(tmp_path))["split"] == "validation"
    final = out.strip().splitlines()[-1]
    assert final.startswith("final: step 14  test top-1 ") and "best on validation: step " in final


@pytest.mark.parametrize("value", ["0.9", "-1"])
def test_a_validation_split_that_cannot_work_is_one_line(folders, tmp_path, value):
    result = run("train.py", *args(folders["clean"], tmp_path, f"--validation_split={value}"), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --validation_split must be at least 0 and below 0.5 (a fraction of the images, e.g. 0.1; 0 turns "
        f"it off), got {float(value):g}")
    assert not os.listdir(tmp_path)


def test_a_class_too_small_for_the_splits_is_one_line(folders, tmp_path):
    root = tmp_path / "pets"
    shutil.copytree(folders["flat"], root)
    os.makedirs(root / "zebra")
    shutil.copy(next(iter((root / "cat").iterdir())), root / "zebra" / "only.png")
    result = run("train.py", *args(str(root), tmp_path / "run"), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: class 'zebra' of {root} has 1 image(s), none of them in the ") and "split" in last
    assert not os.path.exists(tmp_path / "run")
