"""benchmark.py keeps the chapter's output format, runs every mode, and compares with Keras and real data."""
import re
import subprocess
import sys

import pytest
import tensorflow as tf

import model
from training.benchmark import timing

DATE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+"
FAST = ("--batch_size=2", "--num_batches=2", "--warmup_steps=1")


def cpuinfo(key):
    """The first processor's `key` line of /proc/cpuinfo, read here independently of training.compute.precision."""
    with open("/proc/cpuinfo") as f:
        return next(line.split(":", 1)[1].strip() for line in f if line.split(":")[0].strip() == key)


def benchmark(*args, head=False):
    """benchmark.py's lines after the first two (head=True: all), which name this machine's CPU with its bf16/AMX
    flags (checked here) and the dtype with its reason."""
    result = subprocess.run([sys.executable, "benchmark.py", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    flags = [f for f in ("amx_bf16", "amx_tile", "avx512_bf16", "avx512_fp16") if f in cpuinfo("flags").split()]
    assert lines[0].startswith(f"CPU: {cpuinfo('model name')}, ")
    assert lines[0].endswith(f"; bf16/AMX flags: {' '.join(flags) or 'none'}")
    assert lines[1].startswith("dtype ")
    return lines if head else lines[2:]


def assert_mode_blocks(out, header, modes, flops):
    """Each mode, in turn, prints its own block of the chapter's six lines."""
    assert len(out) == 6 * len(modes)
    for i, mode in enumerate(modes):
        block = out[6 * i:6 * i + 6]
        assert block[0].startswith(f"{header}, mode {mode}, dtype float32")
        assert_chapter_format(block, timing.MODES[mode], flops)


def assert_chapter_format(out, info, flops):
    assert re.fullmatch(DATE + r": step 0, duration = \d+\.\d{3}", out[1])
    assert re.fullmatch(DATE + rf": {info} across 2 steps, \d+\.\d{{3}} \+/- \d+\.\d{{3}} sec / batch", out[2])
    assert re.fullmatch(r"images/s: \d+\.\d", out[3])
    assert re.fullmatch(rf"model: {flops} G multiply-adds per image; achieved: \d+\.\d GFLOP/s", out[4])
    assert re.fullmatch(r"peak: \d+\.\d GFLOP/s \(2048x2048 float32 matmul\); model at \d+% of it", out[5])


def test_every_mode_prints_the_chapters_lines():
    # One process times the modes in turn (saves two TensorFlow start-ups), each printing its own block.
    out = benchmark("--model=resnet_v2_50", f"--mode={','.join(timing.MODES)}", *FAST)
    assert_mode_blocks(out, "resnet_v2_50: imagenet family, bottleneck units, batch 2, 224x224", list(timing.MODES),
                       r"3\.482")


def test_keras_reference_runs_the_same_protocol():
    out = benchmark("--model=resnet_v2_50", "--mode=train", "--reference=keras", *FAST)
    assert out[0].startswith("keras.applications.ResNet50V2, batch 2, 224x224, mode train")
    assert_chapter_format(out, "Train", r"3\.482")  # the same network, so the same multiply-adds


def test_real_data_feeds_the_timed_step(cifar_subset_dir):
    out = benchmark("--model=resnet_v2_8", "--mode=train", "--data=cifar10", f"--data_dir={cifar_subset_dir}",
                    *FAST)
    assert out[0].startswith("resnet_v2_8: cifar family, basic units, batch 2, 32x32") and "inputs cifar10" in out[0]
    assert_chapter_format(out, "Train", r"0\.\d{3}")


def test_peak_alone():
    out = benchmark("--peak")
    assert re.fullmatch(r"peak: \d+\.\d GFLOP/s \(2048x2048 float32 matmul, best of 20\)", out[-1])


def test_profile_dir_traces_each_mode(tmp_path):
    benchmark("--model=resnet_v2_8", "--image_size=32", "--num_classes=10", "--mode=forward,train",
              f"--profile_dir={tmp_path}", *FAST)
    from training.benchmark import op_profile
    forward, train = op_profile.op_times(str(tmp_path / "forward")), op_profile.op_times(str(tmp_path / "train"))
    # Depth 8: a stem and 3 units of 2 convolutions, 2 of them with a projection shortcut: 9 convolutions.
    assert sum(n for t, (_, n) in forward.items() if op_profile.CONVOLUTION in t) == 9
    assert any("Backprop" in t for t in train) and not any("Backprop" in t for t in forward)


def test_auto_dtype_follows_this_cpus_flags():
    expected = "bfloat16" if "amx_bf16" in cpuinfo("flags").split() else "float32"  # training/compute/precision.py
    out = benchmark("--model=resnet_v2_8", "--image_size=32", "--num_classes=10", "--mode=train", "--dtype=auto",
                    *FAST, head=True)
    assert out[1].startswith(f"dtype {expected}: --dtype=auto: ")
    assert f"mode train, dtype {expected}, xla False" in out[2]
    assert out[-1].startswith("peak: ") and f"2048x2048 {expected} matmul" in out[-1]


def test_step_lines_every_ten_steps():
    lines = []
    timing.time_run(lambda: [tf.constant(1)], "Forward", num_batches=25, warmup_steps=2, out=lines.append)
    assert [re.search(r"step (\d+),", line).group(1) for line in lines[:-1]] == ["0", "10", "20"]
    assert "Forward across 25 steps" in lines[-1]


def test_flops_of_the_classic_networks():
    # slim's v2 layout (stride on a stage's last unit) gives ResNet-50 3.48 G multiply-adds at 224 px, not the
    # 4.1 G of v1, which strides a stage's first unit; Keras' ResNet50V2 counts the same (test above).
    net, _ = model.create(50, num_classes=1000, image_size=224)
    assert model.flops_per_image(net) == 3_482_255_360
    net, _ = model.create(56, num_classes=10, image_size=32)
    assert model.flops_per_image(net) / 1e9 == pytest.approx(0.125, rel=0.02)
    assert timing.flops_per_batch(net, "train", 4) == 3 * 2 * 4 * model.flops_per_image(net)
    assert timing.flops_per_batch(net, "forward", 4) == 2 * 4 * model.flops_per_image(net)


@pytest.mark.parametrize("args,message", [
    (("--model=vgg",), "error: --model"),
    (("--model=resnet_v2_34", "--reference=keras"), "error: --reference=keras has depths 50, 101, 152"),
])
def test_bad_arguments_are_one_line(args, message):
    bad = subprocess.run([sys.executable, "benchmark.py", *args], capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith(message)


# One subprocess per network runs all its modes; the chapter's AlexNet protocol (up to pool5) for alexnet_lrn.
@pytest.mark.parametrize("args,header,flops", [
    (("--model=alexnet", "--mode=forward,forward_backward,train"), "alexnet: imagenet, batch 2, 224x224", r"0\.717"),
    (("--model=alexnet_lrn", "--noinclude_top", "--mode=forward,forward_backward"),
     "alexnet_lrn: imagenet, up to pool5, batch 2, 224x224", r"0\.658"),
    (("--model=vgg16", "--image_size=32", "--mode=forward,forward_backward,train"),
     "vgg16: small-image variant, batch 2, 32x32", r"0\.314"),
    (("--model=inception_v3", "--mode=forward,forward_backward,train"), "inception_v3: imagenet, batch 2, 299x299",
     r"5\.713"),
])
def test_every_mode_of_the_chapters_other_networks(args, header, flops):
    out = benchmark(*args, *FAST)
    assert_mode_blocks(out, header, args[-1].removeprefix("--mode=").split(","), flops)


def test_train_needs_the_top():
    bad = subprocess.run([sys.executable, "benchmark.py", "--model=alexnet", "--noinclude_top", "--mode=train"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.strip() == "error: --mode=train needs the logits: drop --noinclude_top"
