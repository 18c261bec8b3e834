"""End to end: the real train.py and eval.py as subprocesses on CIFAR-10 images prepared offline."""
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import data
import model
from support import run, snapshot, tensors, train_args

STEPS = 508  # 4 epochs of the subset's 4068 training images at batch 32
TRAIN_TAGS = {"loss", "cross_entropy", "l2", "top_1", "learning_rate", "examples_per_second", "steps_per_second"}


@pytest.fixture(scope="module")
def trained(cifar_subset_dir, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("run"))
    out = run("train.py", *train_args(cifar_subset_dir, model_dir, f"--train_steps={STEPS}")).stdout
    return cifar_subset_dir, model_dir, out


def test_run_directory(trained):
    _, model_dir, out = trained
    assert tf.train.latest_checkpoint(model_dir).endswith(f"ckpt-{STEPS}")
    assert {f"ckpt-{s}.index" for s in (127, 254, 381, 508)} <= set(os.listdir(model_dir))
    with open(os.path.join(model_dir, "config.json")) as f:
        saved = json.load(f)
    assert saved["config"]["depth"] == 8 and saved["config"]["train_steps"] == STEPS
    assert saved["tensorflow"] == tf.__version__ and "replica" in saved["strategy"]
    assert out.strip().splitlines()[-1].startswith(f"final: step {STEPS}  test top-1 ")
    # --validation_split=0: said at start, nothing selected, and every tool takes the final checkpoint
    assert "no validation split: the evaluations during training read the test split for monitoring only" in out
    assert "(final checkpoint; no validation split, nothing selected)" in out.strip().splitlines()[-1]
    assert not os.path.exists(os.path.join(model_dir, "best"))


def test_tensorboard_events(trained):
    _, model_dir, _ = trained
    train_dir, eval_dir = os.path.join(model_dir, "train"), os.path.join(model_dir, "eval")
    events = EventAccumulator(train_dir, size_guidance={"tensors": 0})
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert TRAIN_TAGS | {"augmented_inputs", "config", "_hparams_/session_start_info"} <= tags, tags
    assert b"| depth | 8 |" in tensors(train_dir, "config")[0][1].item()
    assert [s for s, _ in tensors(train_dir, "loss")] == [50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 508]
    grid = tensors(train_dir, "augmented_inputs")[0][1]  # [width, height, encoded png]
    assert tf.io.decode_png(grid[2]).shape == (128, 128, 3)
    assert [s for s, _ in tensors(eval_dir, "top_1")] == [127, 254, 381, 508]
    assert {"loss", "top_1", "top_5"} <= set(EventAccumulator(eval_dir).Reload().Tags()["tensors"])


def test_it_learns(trained):
    # 10 classes: chance is 10% top-1, and over 1017 test images its standard error is under 1%. 20% is
    # ten standard errors above chance, while this run lands near 30-40% (see the README's results table).
    _, model_dir, out = trained
    losses = [float(v) for _, v in tensors(os.path.join(model_dir, "train"), "loss")]
    assert np.mean(losses[-3:]) < np.mean(losses[:2]) - 0.1
    final = [float(v) for _, v in tensors(os.path.join(model_dir, "eval"), "top_1")][-1]
    assert final > 0.20, out


def test_eval_counts_every_example_and_agrees_with_training(trained):
    data_dir, model_dir, out = trained
    said = run("eval.py", f"--model_dir={model_dir}", "--batch_size=100").stdout.splitlines()[1]
    assert said == (f"checkpoint {model_dir}/ckpt-{STEPS}: the final checkpoint (the run has no validation split, "
                    "so nothing was selected)")
    with open(os.path.join(model_dir, "eval", "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["num_examples"] == 1017 and metrics["step"] == STEPS
    assert metrics["final"]["top_1"] == metrics["top_1"] and "best_on_validation" not in metrics  # train.py's
    assert set(metrics["per_class_accuracy"]) == {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                  "horse", "ship", "truck"}
    final_eval = [float(v) for _, v in tensors(os.path.join(model_dir, "eval"), "top_1")][-1]
    assert metrics["top_1"] == pytest.approx(final_eval, abs=1e-6)
    assert 0 <= metrics["top_1"] <= metrics["top_5"] <= 1 and np.isfinite(metrics["loss"])


def test_eval_watch_stops_after_the_final_checkpoint(trained):
    _, model_dir, _ = trained
    result = run("eval.py", f"--model_dir={model_dir}", "--watch", "--timeout=60")
    evaluated = [line.split(":")[0] for line in result.stdout.splitlines() if line.startswith("step ")]
    assert evaluated == ["step 127", "step 254", "step 381", f"step {STEPS}"]  # every kept checkpoint, once


def test_eval_of_a_directory_without_a_run_is_one_line(tmp_path):
    result = run("eval.py", f"--model_dir={tmp_path}", check=False)
    assert result.returncode != 0 and result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in result.stderr


def test_batch_norm_statistics_were_learned(trained):
    data_dir, model_dir, _ = trained
    info = data.get_info("cifar10", data_dir)
    net, _ = model.create(8, 10, 32, bn_momentum=0.9)
    fresh = [v.numpy().copy() for v in net.non_trainable_weights]
    tf.train.Checkpoint(model=net).restore(tf.train.latest_checkpoint(model_dir)).expect_partial()
    for before, v in zip(fresh, net.non_trainable_weights):
        assert not np.allclose(before, v.numpy()), v.path
    correct = {True: 0.0, False: 0.0}
    for images, labels, weights in data.make_eval_dataset(info, data_dir=data_dir, global_batch_size=128):
        for training in correct:
            predicted = tf.argmax(net(images, training=training), -1, output_type=tf.int32)
            correct[training] += float(tf.reduce_sum(tf.cast(predicted == labels, tf.float32) * weights))
    # Inference with the moving statistics is as good as normalizing each batch of 128 by its own statistics.
    assert abs(correct[False] - correct[True]) / info.num_eval < 0.08, correct


def test_rerun_resumes_from_the_last_step(trained, tmp_path):
    data_dir, model_dir, _ = trained
    # train.py's default --dtype=auto: the float32 run stays float32 whatever auto picks on this machine.
    out = run("train.py", *train_args(data_dir, model_dir, f"--train_steps={STEPS + 12}", "--dtype=auto")).stdout
    assert out.startswith("dtype float32: kept from the run's start (config.json): --dtype=float32 as given\n")
    assert json.load(open(os.path.join(model_dir, "config.json")))["config"]["dtype"] == "float32"
    assert f"resuming from {model_dir}/ckpt-{STEPS} at step {STEPS}" in out
    assert "step 520/520" in out
    steps = [s for s, _ in tensors(os.path.join(model_dir, "train"), "loss")]
    assert steps[-2:] == [508, 520] and len(steps) == len(set(steps))


@pytest.mark.parametrize("args,message", [
    (("--dataset=mnist_corrupted_typo",), "unknown dataset"),
    (("--depth=51",), "valid depths"),
    (("--train_epochs=-1",), "--train_epochs must not be negative"),
    (("--strategy=mirrored", "--cpu_devices=2", "--batch_size=33"), "not divisible by the 2 replicas"),
    (("--depth=14",), "holds another run: depth=8 (asked 14)"),
    (("--model=vgg16",), "holds another run: model=resnet_v2 (asked vgg16)"),
    (("--model=inception_v3",), "inception_v3 needs images of at least 75 px, not 32"),
    (("--dtype=bfloat16",), "trains in float32, not --dtype=bfloat16; pass --dtype=float32 or leave --dtype out"),
])
def test_bad_flags_fail_in_one_line_and_touch_nothing(trained, args, message):
    data_dir, model_dir, _ = trained
    before = snapshot(model_dir)
    base = {a.split("=")[0]: a for a in train_args(data_dir, model_dir, "--train_steps=600")}
    base.update({a.split("=")[0]: a for a in args})
    result = run("train.py", *base.values(), check=False)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert snapshot(model_dir) == before


def test_resnet20_recipe_batch_runs_past_its_third_loop_call(cifar_subset_dir, tmp_path):
    # Regression: with grappler's arithmetic optimizer on, this run died at step 31 with AlreadyExistsError.
    out = run("train.py", "--dataset=cifar10", f"--data_dir={cifar_subset_dir}", f"--model_dir={tmp_path}",
              "--depth=20", "--train_steps=62", "--log_every_steps=31").stdout
    assert out.strip().splitlines()[-1].startswith("final: step 62  test top-1 ")


def test_another_model_trains_resumes_and_evaluates_with_the_same_tools(cifar_subset_dir, tmp_path):
    # AlexNet's small-image variant, with dropout, on two replicas: checkpoints, resume and eval.py.
    args = ("--model=alexnet", "--dataset=cifar10", f"--data_dir={cifar_subset_dir}", f"--model_dir={tmp_path}",
            "--batch_size=8", "--steps_per_loop=2", "--log_every_steps=2", "--strategy=mirrored", "--cpu_devices=2")
    run("train.py", *args, "--train_steps=4")
    out = run("train.py", *args, "--train_steps=6").stdout
    assert f"resuming from {tmp_path}/ckpt-4 at step 4" in out
    final = out.strip().splitlines()[-1]
    assert final.startswith("final: step 6  test top-1 ")
    with open(os.path.join(tmp_path, "config.json")) as f:
        assert json.load(f)["config"]["model"] == "alexnet"
    evaluated = [line for line in run("eval.py", f"--model_dir={tmp_path}").stdout.splitlines()
                 if line.startswith("step ")][0]
    assert evaluated.startswith("step 6: top-1 " + final.split("top-1 ")[1].split()[0])


# Each entry point with flags of its own and flags it takes from flags/ (the shared ones).
HELP_LISTS = {"train.py": ["dataset", "depth", "recipe", "dtype"], "eval.py": ["model_dir", "tta", "raw_weights"],
              "predict.py": ["top_k", "checkpoint", "tta", "dtype"], "export.py": ["export_dir", "tta", "dtype"],
              "benchmark.py": ["mode", "dtype"], "pretrained.py": ["source"]}


@pytest.mark.parametrize("script", sorted(HELP_LISTS))
def test_help_exits_0_and_lists_the_flags_it_takes_from_flags(script):
    listed = re.findall(r"^  --(?:\[no\])?(\w+):", run(script, "--help").stdout, re.MULTILINE)  # and exits 0
    assert set(HELP_LISTS[script]) <= set(listed), listed  # those defined in flags/ too (tests/test_docs.py: the
    # manual explains every flag of every tool)
