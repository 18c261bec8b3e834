"""benchmark.py keeps the chapter's output format and runs every mode."""
import re
import subprocess
import sys

import pytest

import model
from training import timing

DATE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+"


@pytest.mark.parametrize("mode", sorted(timing.MODES))
def test_every_mode_prints_the_chapters_lines(mode):
    out = subprocess.run([sys.executable, "benchmark.py", "--model=resnet_v2_50", "--batch_size=2",
                          f"--mode={mode}", "--num_batches=2", "--warmup_steps=1"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert re.fullmatch(DATE + r": step 0, duration = \d+\.\d{3}", out[1])
    info = timing.MODES[mode]
    assert re.fullmatch(DATE + rf": {info} across 2 steps, \d+\.\d{{3}} \+/- \d+\.\d{{3}} sec / batch", out[2])
    assert re.fullmatch(r"images/s: \d+\.\d", out[3])
    assert re.fullmatch(r"model: 3\.482 G multiply-adds per image; achieved: \d+\.\d GFLOP/s", out[4])


def test_step_lines_every_ten_steps():
    lines = []
    timing.time_run(lambda: [model.__name__ and __import__("tensorflow").constant(1)], "Forward",
                    num_batches=25, warmup_steps=2, out=lines.append)
    assert [re.search(r"step (\d+),", l).group(1) for l in lines[:-1]] == ["0", "10", "20"]
    assert "Forward across 25 steps" in lines[-1]


def test_flops_of_the_classic_networks():
    net, _ = model.create(56, num_classes=10, image_size=32)
    assert model.flops_per_image(net) / 1e9 == pytest.approx(0.125, rel=0.02)
    assert timing.flops_per_batch(net, "train", 4) == 3 * 2 * 4 * model.flops_per_image(net)


def test_bad_model_name_is_one_line():
    bad = subprocess.run([sys.executable, "benchmark.py", "--model=vgg"], capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith("error: --model")
