"""The flags reference, generated from the code: every entry point's own flags with their defaults and help.

    python -m flags.reference > docs/flags.md

Each tool is asked for its flags the way absl documents them (`--helpxml`, in a process of its own, since the
tools define flags of the same names); absl's own flags (logging, --help) are left out."""
import concurrent.futures
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = (
    ("train.py", "Trains a run; re-running the same command resumes it."),
    ("eval.py", "Evaluates a run's checkpoint, or each new one (--watch)."),
    ("predict.py", "Classifies image files and folders with a run."),
    ("export.py", "Writes a run as a SavedModel."),
    ("pretrained.py", "Imports published ImageNet weights as a run."),
    ("benchmark.py", "Times a network as the book chapter did."),
    ("-m model", "Prints a network's layers and parameter counts."),
    ("-m data.prepare", "Prepares a tfds dataset offline from its archives; with --max_side, pre-resized."),
    ("-m data.benchmark", "Times the input pipeline."),
    ("-m data.benchmark.photos", "Writes the real-photograph folder data.benchmark measures large images on."),
    ("-m data.service", "Runs a tf.data service dispatcher or worker for train.py --data_service."),
)
HEADER = """# Flags reference

Generated from the code by `python -m flags.reference > docs/flags.md`; a test holds this page equal to what that
command prints. Each tool's `--help` lists the same flags; the manual pages explain them in context.
"""


def tool_flags(tool):
    """[(name, default, help)] of the flags `tool` (a script, or "-m module") defines or adopts, in name order."""
    result = subprocess.run([sys.executable, *tool.split(), "--helpxml"], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.returncode:
        raise RuntimeError(f"{tool} --helpxml failed: {result.stderr.strip().splitlines()[-1:]}")
    root = ET.fromstring(result.stdout)
    found = {}
    for flag in root.iter("flag"):
        if flag.findtext("key") != "yes" or flag.findtext("file", "").startswith("absl."):
            continue
        found[flag.findtext("name")] = (flag.findtext("default") or "", " ".join((flag.findtext("meaning") or "")
                                                                                  .split()))
    return [(name, *found[name]) for name in sorted(found)]


def every_tool():
    """{tool: tool_flags(tool)} for every entry point, asked side by side."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip((t for t, _ in TOOLS), pool.map(tool_flags, (t for t, _ in TOOLS))))


def markdown(flags_by_tool):
    parts = [HEADER]
    for tool, what in TOOLS:
        command = f"python {tool}"
        parts.append(f"\n## `{command}`\n\n{what}\n\n| flag | default | what it does |\n| --- | --- | --- |")
        for name, default, meaning in flags_by_tool[tool]:
            cell = f"`{default}`" if default else "none"
            parts.append(f"| `--{name}` | {cell} | {meaning.replace('|', '&#124;')} |")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown(every_tool()))
