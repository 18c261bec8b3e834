"""What users do with a trained run: predict.py, export.py (reloaded in a fresh process), eval.py's confusion
matrix and per-class table, metrics.csv, and fine-tuning with --init_checkpoint. All on real files."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import model
from support import ROOT, run, tensors
from training.evaluation import reports
from training.rundir import checkpoints

STEPS = 60
CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PETS = {3: "cat", 5: "dog", 8: "ship"}  # CIFAR-10 labels -> the 3-class folder dataset


def train_args(data_dir, model_dir, *extra):
    return (f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--depth=8", "--batch_size=8",
            "--log_every_steps=20", "--steps_per_loop=10", *extra)


@pytest.fixture(scope="module")
def trained(cifar_subset_dir, tmp_path_factory):
    """A depth-8 CIFAR-10 run of 60 steps with a validation split, evaluated at steps 30 and 60."""
    model_dir = str(tmp_path_factory.mktemp("run"))
    run("train.py", "--dataset=cifar10", *train_args(cifar_subset_dir, model_dir, f"--train_steps={STEPS}",
                                                     "--epochs_between_evals=0.066", "--validation_split=0.1"))
    return cifar_subset_dir, model_dir


@pytest.fixture(scope="module")
def images(cifar_subset_dir, tmp_path_factory):
    """24 real test images as PNG files named by their label, one 300x200 JPEG, and a corrupt file."""
    directory = tmp_path_factory.mktemp("images")
    split = tfds.load("cifar10", split="test", data_dir=cifar_subset_dir)
    for i, example in enumerate(split.take(24)):
        tf.io.write_file(str(directory / f"{i:02d}_{CIFAR10[int(example['label'])]}.png"),
                         tf.io.encode_png(example["image"]))
    tf.io.write_file(str(directory / "large.jpg"),
                     tf.io.encode_jpeg(tf.cast(tf.image.resize(example["image"], [300, 200]), tf.uint8)))
    (directory / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return directory


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_metrics_csv_has_a_row_per_log_and_eval(trained):
    _, model_dir = trained
    rows = read_csv(os.path.join(model_dir, "metrics.csv"))
    assert rows[0] == ["step", "epoch", "train_loss", "train_top_1", "eval_loss", "eval_top_1", "eval_top_5",
                       "learning_rate", "images_per_second"]
    steps = [int(r[0]) for r in rows[1:]]
    assert steps == [20, 30, 40, 60]  # logs every 20, evals every 30 (0.066 of 460 steps per epoch)
    by_step = {int(r[0]): dict(zip(rows[0], r)) for r in rows[1:]}
    assert by_step[30]["train_loss"] == "" and float(by_step[30]["eval_top_1"]) > 0
    assert float(by_step[60]["train_loss"]) > 0 and float(by_step[60]["eval_top_5"]) >= float(by_step[60]["eval_top_1"])
    assert float(by_step[40]["epoch"]) == pytest.approx(40 / 460, abs=1e-3)  # 3686 training images at batch 8


def test_predict_writes_top_k_with_class_names_and_error_rows(trained, images, tmp_path):
    _, model_dir = trained
    output = tmp_path / "preds.csv"
    result = run("predict.py", f"--model_dir={model_dir}", str(images), str(tmp_path / "missing.png"),
                 "--top_k=3", f"--output={output}")
    rows = read_csv(output)
    assert rows[0] == ["path", "label_1", "prob_1", "label_2", "prob_2", "label_3", "prob_3", "error"]
    by_name = {os.path.basename(r[0]): r for r in rows[1:]}
    assert len(by_name) == 27
    for name, row in by_name.items():
        if name in ("corrupt.jpg", "missing.png"):
            assert row[1:7] == [""] * 6 and row[7], row
            continue
        assert row[7] == "" and set(row[1:7:2]) <= set(CIFAR10) and len(set(row[1:7:2])) == 3
        probabilities = [float(p) for p in row[2:7:2]]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0 + 1e-5
    assert "Unknown image file format" in by_name["corrupt.jpg"][7] or "JPEG" in by_name["corrupt.jpg"][7]
    assert by_name["missing.png"][7] == "No such file or directory"
    assert "best/ckpt-" in result.stdout.splitlines()[-1] and "(2 unreadable)" in result.stdout
    # No --dtype given: not "as given" (tests/entry_points/test_mixed_precision_cli.py passes one).
    assert result.stdout.splitlines()[0] == ("dtype float32: predict.py's default (--dtype=auto picks for this "
                                             "machine)")


def test_exported_model_in_a_fresh_process_agrees_with_predict(trained, images, tmp_path):
    _, model_dir = trained
    output, export_dir = tmp_path / "preds.csv", tmp_path / "exported"
    run("predict.py", f"--model_dir={model_dir}", str(images), "--top_k=5", f"--output={output}")
    run("export.py", f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    pngs = sorted(str(p) for p in images.glob("*.png"))
    assert len(pngs) >= 20
    reloaded = subprocess.run([sys.executable, "-c", RELOAD, str(export_dir), *pngs], capture_output=True,
                              text=True, cwd=ROOT, check=True)
    exported = json.loads(reloaded.stdout.splitlines()[-1])
    predicted = {r[0]: r for r in read_csv(output)[1:]}
    assert exported["outputs"] == ["probabilities", "top_k_class_names", "top_k_indices", "top_k_probabilities"]
    for path, by_bytes, by_tensor in zip(pngs, exported["bytes"], exported["images"]):
        assert predicted[path][1] == by_bytes[0] == by_tensor[0] and by_bytes[0] in CIFAR10
        assert float(predicted[path][2]) == pytest.approx(by_bytes[1], abs=1e-6)
        assert by_tensor[1] == pytest.approx(by_bytes[1], abs=1e-6)


# Runs in a fresh process: the SavedModel alone, no project code.
RELOAD = """
import json, sys
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
encoded = tf.constant([open(p, "rb").read() for p in sys.argv[2:]])
by_bytes = model.signatures["serving_default"](image_bytes=encoded)
by_tensor = model.signatures["images"](images=tf.stack([tf.io.decode_png(e, channels=3) for e in encoded]))
top = lambda out: [[n.decode(), float(p)] for n, p in zip(out["top_k_class_names"][:, 0].numpy(),
                                                          out["top_k_probabilities"][:, 0].numpy())]
print(json.dumps({"bytes": top(by_bytes), "images": top(by_tensor), "outputs": sorted(by_bytes)}))
"""


def test_eval_writes_confusion_matrix_and_per_class_table(trained):
    _, model_dir = trained
    out = run("eval.py", f"--model_dir={model_dir}").stdout
    eval_dir = os.path.join(model_dir, "eval")
    matrix = read_csv(os.path.join(eval_dir, reports.CONFUSION_CSV))
    assert matrix[0][1:] == list(CIFAR10) and [r[0] for r in matrix[1:]] == list(CIFAR10)
    counts = np.array([[int(c) for c in r[1:]] for r in matrix[1:]])
    with open(os.path.join(eval_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert counts.sum() == metrics["num_examples"] == 1017
    assert np.trace(counts) == round(metrics["top_1"] * 1017)
    per_class = read_csv(os.path.join(eval_dir, reports.PER_CLASS_CSV))
    assert per_class[0] == ["class", "precision", "recall", "f1", "support"]
    assert [int(r[4]) for r in per_class[1:]] == counts.sum(axis=1).tolist()
    assert [float(r[2]) for r in per_class[1:]] == pytest.approx(np.diag(counts) / counts.sum(axis=1), abs=1e-4)
    png = tf.io.decode_png(open(os.path.join(eval_dir, reports.CONFUSION_PNG), "rb").read())
    side = round(reports.figure_inches(10) * reports.DPI)
    assert png.shape == (side, side, 4) or png.shape == (side, side, 3)
    # At the checkpoint eval.py took: the best on the validation split, of the evaluations at steps 30 and 60.
    assert metrics["step"] in (STEPS // 2, STEPS)
    assert [step for step, _ in tensors(eval_dir, "confusion_matrix")] == [metrics["step"]]
    assert "precision  recall" in out and out.count("\n") >= 12


def make_folder(data_dir, root, per_class):
    """A 3-class folder dataset of real CIFAR-10 images: train/<class>/*.png and test/<class>/*.png."""
    for split, count in per_class.items():
        seen = dict.fromkeys(PETS, 0)
        for example in tfds.load("cifar10", split=split, data_dir=data_dir):
            label = int(example["label"])
            if label in PETS and seen[label] < count:
                os.makedirs(root / split / PETS[label], exist_ok=True)
                tf.io.write_file(str(root / split / PETS[label] / f"{seen[label]}.png"),
                                 tf.io.encode_png(example["image"]))
                seen[label] += 1
            if min(seen.values()) == count:
                break
    return root


def weights(prefix, num_classes):
    """{layer name: [arrays]} of the depth-8 network restored from a checkpoint."""
    net, _ = model.create(8, num_classes, 32)
    checkpoints.restore(prefix, model=net)
    return {layer.name: layer.get_weights() for layer in net.layers if layer.weights}


@pytest.mark.parametrize("freeze", [True, False])
def test_fine_tuning_copies_the_backbone_and_makes_a_new_head(trained, tmp_path, freeze):
    data_dir, source_dir = trained
    pets = make_folder(data_dir, tmp_path / "pets", {"train": 16, "test": 4})
    model_dir = tmp_path / "finetuned"
    # Learning rate 0 (or a frozen backbone) keeps the step-0 weights, so after training they must still be
    # exactly the checkpoint's.
    extra = ["--freeze_backbone"] if freeze else ["--learning_rate=0"]
    out = run("train.py", f"--dataset=folder:{pets}", *train_args(data_dir, model_dir, "--train_steps=4",
                                                                   f"--init_checkpoint={source_dir}", *extra,
                                                                   "--validation_split=0")).stdout
    source = os.path.join(source_dir, "best", os.path.basename(json.load(
        open(os.path.join(source_dir, "best", "best.json")))["checkpoints"][0]["checkpoint"]))
    step = source.rsplit("-", 1)[1]
    assert f"from {source} (step {step}); a new 3-class head (the checkpoint's has 10)" in out
    assert "also new" not in out
    theirs, ours = weights(source, 10), weights(str(model_dir / "ckpt-4"), 3)
    assert set(theirs) == set(ours)
    for layer, values in ours.items():
        if layer == "logits":  # a new head: 10 classes -> 3
            assert [v.shape for v in values] == [(64, 3), (3,)]
            continue
        # With lr 0, batch norm still moves its statistics (the last two weights); frozen, it doesn't.
        compared = values if freeze or "_bn" not in layer else values[:2]
        for ours_value, their_value in zip(compared, theirs[layer]):
            np.testing.assert_array_equal(ours_value, their_value, err_msg=layer)
    if freeze:  # unfreezing in the same directory would restore into another optimizer: refused up front
        again = run("train.py", f"--dataset=folder:{pets}", *train_args(data_dir, model_dir, "--train_steps=8",
                                                                                "--validation_split=0"),
                    check=False)
        assert again.stderr.strip().splitlines()[-1] == (
            f"error: {model_dir} was trained with --freeze_backbone; pass the same, or start a new --model_dir "
            f"with --init_checkpoint={model_dir}")


def test_fine_tuning_refuses_another_architecture(trained, tmp_path):
    data_dir, source_dir = trained
    result = run("train.py", "--dataset=cifar10", *train_args(data_dir, tmp_path, "--train_steps=2", "--depth=14",
                                                               f"--init_checkpoint={source_dir}"), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --init_checkpoint={source_dir} is another architecture: depth=8 (this run: 14)")


def test_per_class_precision_recall_of_a_known_matrix():
    rows = reports.per_class([[3, 1, 0], [0, 2, 0], [1, 0, 0]], ["a", "b", "c"])
    assert [r["support"] for r in rows] == [4, 2, 1]
    assert [r["precision"] for r in rows] == pytest.approx([3 / 4, 2 / 3, 0.0])
    assert [r["recall"] for r in rows] == pytest.approx([3 / 4, 1.0, 0.0])
    assert rows[1]["f1"] == pytest.approx(2 * (2 / 3) / (2 / 3 + 1)) and rows[2]["f1"] == 0.0


@pytest.mark.parametrize("script,args,message", [
    ("predict.py", ("{empty}",), "error: no image files (.jpg, .jpeg, .png, .bmp, .gif) in {empty}"),
    ("export.py", ("--export_dir={empty}",), "error: --export_dir={empty} already exists; remove it or choose another"),
])
def test_predict_and_export_refuse_bad_input_in_one_line(trained, tmp_path, script, args, message):
    _, model_dir = trained
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(script, f"--model_dir={model_dir}", *(a.format(empty=empty) for a in args), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == message.format(empty=empty)


def test_warm_start_across_input_sizes_copies_every_layer_whose_shape_agrees(tmp_path, two_replicas):
    # An ImageNet-family ResNet-18 trained at 72 px (7x7 stem) warm-starts one at 32 px (3x3 stem) under two
    # replicas: everything but the stem and the head is copied; both replicas hold the copied values.
    import data
    from support import make_config
    from training.rundir import run_dir, warm_start
    source_dir = tmp_path / "source"
    source = make_config(model_dir=str(source_dir), depth=18, image_size=72, num_classes=3)
    donor, _ = model.create(18, 3, 72)
    info = data.DatasetInfo("folder:/x", 3, 72, False, 8, 4, "train", "test", ("a", "b", "c"), (0, 0, 0), (1, 1, 1))
    os.makedirs(source_dir)
    run_dir.write_config(source, info, two_replicas)
    checkpoint = tf.train.Checkpoint(step=tf.Variable(7, dtype=tf.int64), model=donor)
    tf.train.CheckpointManager(checkpoint, str(source_dir), 1, checkpoint_name="ckpt").save(checkpoint_number=7)
    config = make_config(depth=18, image_size=32, num_classes=10, init_checkpoint=str(source_dir))
    with two_replicas.scope():
        net, _ = model.create(18, 10, 32)
    lines = []
    warm_start.warm_start(net, config, out=lines.append)
    assert lines == [f"warm-started {len(net.weights) - 4} variables from {source_dir}/ckpt-7 (step 7); a new "
                     "10-class head (the checkpoint's has 3); also new, their shapes differ at 32 px (the "
                     "checkpoint's run: 72 px): stem_conv"]
    kernel = net.get_layer("stage4_unit2_conv2").kernel
    for replica_value in two_replicas.experimental_local_results(kernel):
        np.testing.assert_array_equal(replica_value, donor.get_layer("stage4_unit2_conv2").kernel)
