"""The modern recipe end to end: --recipe=modern with every augmentation and a weight EMA stopped by SIGTERM and
resumed bit for bit; eval.py, predict.py and export.py take the EMA (or the raw weights); flags override the
recipe; bad recipe flags fail in one line."""
import csv
import json
import os
import signal

import numpy as np
import pytest

from support import assert_bitwise_equal, interrupt, run, start

STEPS = 160  # an epoch of the subset at batch 32 is 127 steps: checkpoints at 127 and 160


def args(data_dir, model_dir, *extra):
    return ("--dataset=cifar10", f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--depth=8",
            "--batch_size=32", f"--train_steps={STEPS}", "--log_every_steps=10", "--steps_per_loop=5",
            "--recipe=modern", "--ema_decay=0.99", "--mixup_alpha=0.2", "--cutmix_alpha=1.0",
            "--randaugment_layers=1", "--cutout=8", "--precise_bn_examples=256", "--deterministic", "--validation_split=0",
            *extra)  # in train.py's default dtype (bfloat16 on a CPU with AMX)


@pytest.fixture(scope="module")
def modern(cifar_subset_dir, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("modern"))
    out = run("train.py", *args(cifar_subset_dir, model_dir)).stdout
    return cifar_subset_dir, model_dir, out


def test_modern_recipe_with_ema_resumes_bitwise_after_sigterm(modern, tmp_path):
    data_dir, reference_dir, _ = modern
    status, out, _ = interrupt(start(*args(data_dir, tmp_path)), "step 60/", signal.SIGTERM)
    assert status == 143
    resumed = run("train.py", *args(data_dir, tmp_path)).stdout
    assert "resuming from" in resumed
    assert_bitwise_equal(f"{reference_dir}/ckpt-{STEPS}", f"{tmp_path}/ckpt-{STEPS}")  # EMA and its statistics too


def test_the_run_records_the_recipe_and_reports_the_ema(modern):
    _, model_dir, out = modern
    config = json.load(open(os.path.join(model_dir, "config.json")))["config"]
    assert (config["recipe"], config["lr_schedule"], config["label_smoothing"], config["cutout"]) == \
        ("modern", "cosine", 0.0, 8)  # no label smoothing on small images (flags/recipes.py MODERN_SMALL)
    assert config["nesterov"] and config["weight_decay"] == pytest.approx(2e-4 * (64_000 / STEPS) ** 0.5)
    assert (config["mixup_prob"], config["cutmix_prob"], config["ema_decay"]) == (0.5, 0.5, 0.99)
    assert "precise batch norm: 7 layers from 256 training images in " in out
    final = out.strip().splitlines()[-1]
    assert final.startswith(f"final: step {STEPS}  test top-1 ") and "EMA top-1 " in final
    with open(os.path.join(model_dir, "metrics.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[-1]["eval_ema_top_1"] and float(rows[-1]["eval_ema_top_1"]) == pytest.approx(
        float(final.split("EMA top-1 ")[1].split()[0]), abs=1e-4)
    assert os.path.isdir(os.path.join(model_dir, "eval_ema"))


def test_eval_takes_the_ema_unless_asked_for_the_raw_weights(modern):
    _, model_dir, out = modern
    final = out.strip().splitlines()[-1]
    ema_top1, raw_top1 = final.split("EMA top-1 ")[1].split()[0], final.split("test top-1 ")[1].split()[0]
    checkpoint = f"--checkpoint={model_dir}/ckpt-{STEPS}"
    averaged = run("eval.py", f"--model_dir={model_dir}", checkpoint).stdout.splitlines()[0]
    assert averaged.startswith(f"step {STEPS}: top-1 {ema_top1}") and "ema weights" in averaged
    raw = run("eval.py", f"--model_dir={model_dir}", checkpoint, "--raw_weights").stdout.splitlines()[0]
    assert raw.startswith(f"step {STEPS}: top-1 {raw_top1}") and "ema weights" not in raw
    flipped = run("eval.py", f"--model_dir={model_dir}", checkpoint, "--tta=flip").stdout.splitlines()[0]
    assert "tta flip" in flipped
    refused = run("eval.py", f"--model_dir={model_dir}", "--tta=flip+crops", check=False)
    assert refused.returncode == 1 and refused.stderr.strip().splitlines()[-1] == (
        "error: --tta=flip+crops crops a margin small images (32 px) don't have; use --tta=flip")


def test_export_with_flip_tta_agrees_with_predict(modern, tmp_path):
    import tensorflow as tf
    _, model_dir, _ = modern
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    path = str(tmp_path / "x.png")
    tf.io.write_file(path, tf.io.encode_png(image))
    run("predict.py", f"--model_dir={model_dir}", path, f"--output={tmp_path / 'p.csv'}", "--tta=flip", "--top_k=1")
    with open(tmp_path / "p.csv", newline="") as f:
        row = list(csv.reader(f))[1]
    run("export.py", f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'e'}", "--tta=flip", "--top_k=1")
    served = tf.saved_model.load(str(tmp_path / "e")).signatures["images"](images=tf.constant(image[None]))
    assert served["top_k_class_names"].numpy()[0][0].decode() == row[1]
    assert float(served["top_k_probabilities"][0][0]) == pytest.approx(float(row[2]), abs=2e-6)


@pytest.mark.parametrize("extra,message", [
    (("--mixup_prob=0.5", "--mixup_alpha=0"), "--mixup_prob=0.5 needs --mixup_alpha > 0"),
    (("--mixup_prob=0.7", "--cutmix_prob=0.7"), "--mixup_prob + --cutmix_prob must not pass 1"),
    (("--ema_decay=1.0",), "--ema_decay must be below 1"),
])
def test_bad_recipe_flags_are_one_line(cifar_subset_dir, tmp_path, extra, message):
    result = run("train.py", *args(cifar_subset_dir, tmp_path, *extra), check=False)
    assert result.returncode == 1 and message in result.stderr.strip().splitlines()[-1]
    assert not os.listdir(tmp_path)
