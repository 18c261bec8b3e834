"""console/cuda_noise.py: TensorFlow's known CUDA probing lines are dropped from fd 2 where there is no GPU, every
other line kept in order; a machine with a GPU keeps them all; and the real entry points start without them."""
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from console import cuda_noise
from support import ROOT

# The lines as TensorFlow 2.21 writes them on this machine (no GPU).
NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796589223.008357   24464 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.",
    "E0000 00:00:1796589226.806368   24464 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed "
    "call to cuInit: UNKNOWN ERROR (303)",
]
KEPT = [
    "I0000 00:00:1796589223.007927   24464 port.cc:153] oneDNN custom operations are on.",
    "E0000 00:00:1796589226.806368   24464 cuda_platform.cc:52] failed call to cuInit: CUDA_ERROR_OUT_OF_MEMORY",
    "WARNING: something else",
    "error: --depth=7 is not a ResNet depth",
]
WRITER = """
import os, sys
sys.path.insert(0, {root!r})
from console import cuda_noise
if {gpu}:
    cuda_noise.gpu_present = lambda: True
lines = {lines!r}
cuda_noise.start()
for i, line in enumerate(lines):
    if i % 2:
        os.write(2, (line + "\\n").encode())  # as C++ writes
    else:
        print(line, file=sys.stderr, flush=True)
os.write(2, b"a last line without its newline")
cuda_noise.stop()
print("after stop", file=sys.stderr)
"""


def test_exactly_the_known_lines_are_noise():
    assert all(cuda_noise.is_noise(line) for line in NOISE)
    assert not any(cuda_noise.is_noise(line) for line in KEPT)


@pytest.mark.parametrize("gpu", [False, True])
def test_the_filter_drops_the_known_lines_only_and_keeps_the_order(gpu):
    lines = [NOISE[0], KEPT[0], NOISE[1], KEPT[1], NOISE[1], KEPT[2], NOISE[2], KEPT[3]]
    result = subprocess.run([sys.executable, "-c", WRITER.format(root=ROOT, gpu=gpu, lines=lines)],
                            capture_output=True, text=True, timeout=60)
    expected = lines if gpu else KEPT
    assert result.stderr.splitlines() == expected + ["a last line without its newline" + "after stop"]


ENTRY_POINTS = [  # each imports TensorFlow and probes the devices, then stops at a bad input or does a small job
    ["train.py", "--dataset=cifar10", "--time_budget=abc"],
    ["eval.py", "--model_dir=/nonexistent/run"],
    ["predict.py", "--model_dir=/nonexistent/run", "--output=/nonexistent/predictions.csv", "image.png"],
    ["export.py", "--model_dir=/nonexistent/run", "--export_dir=/nonexistent/export"],
    ["pretrained.py", "--source=/nonexistent/weights.h5", "--model_dir=/nonexistent/imported"],
    ["benchmark.py", "--model=resnet_v2_8", "--image_size=32", "--num_classes=10", "--batch_size=2",
     "--num_batches=1", "--warmup_steps=1", "--mode=forward"],
    ["-m", "model", "--depth=8", "--image_size=32", "--num_classes=10"],
    ["-m", "data.prepare", "cifar10", "--archive=/nonexistent/cifar.tar.gz", "--data_dir=/nonexistent/tfds"],
    ["-m", "data.benchmark", "--dataset=cifar10", "--data_dir=/nonexistent/tfds", "--steps=1"],
]


@pytest.mark.skipif(cuda_noise.gpu_present(), reason="a machine with a GPU keeps TensorFlow's CUDA lines")
def test_every_entry_point_starts_without_the_cuda_lines():
    def run(argv):
        return argv, subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, timeout=600)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(run, ENTRY_POINTS))
    for argv, result in results:
        noise = [line for line in result.stderr.splitlines() if "cuda" in line.lower() or "InitializeLog" in line]
        assert noise == [], f"{' '.join(argv)}:\n{result.stderr}"
        assert result.stdout.strip() or result.stderr.strip().splitlines()[-1].startswith("error:"), \
            f"{' '.join(argv)} printed nothing of ours:\n{result.stderr}"
