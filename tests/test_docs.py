"""The README and the manual in docs/: docs/flags.md is what `python -m flags.reference` prints, the manual explains
every flag of every tool, every link resolves, and every command names only real tools, flags and files."""
import importlib.util
import os
import re
import shlex
import subprocess

import pytest

from flags import reference
from support import ROOT

DOCS = os.path.join(ROOT, "docs")
README_MAX_LINES = 250
HELP = ("help", "helpfull", "helpshort", "helpxml")  # absl's, on every tool


def pages():
    """{name: text} of README.md and every docs/ page."""
    found = {"README.md": open(os.path.join(ROOT, "README.md")).read()}
    for name in sorted(os.listdir(DOCS)):
        if name.endswith(".md"):
            found[f"docs/{name}"] = open(os.path.join(DOCS, name)).read()
    return found


@pytest.fixture(scope="module")
def tools():
    """{tool: [(flag, default, help)]} as `python -m flags.reference` asks every entry point (each exits 0)."""
    return reference.every_tool()


def test_the_flags_reference_is_what_the_code_generates(tools):
    assert open(os.path.join(DOCS, "flags.md")).read() == reference.markdown(tools), (
        "docs/flags.md is stale: python -m flags.reference > docs/flags.md")


def test_the_manual_explains_every_flag_of_every_tool(tools):
    manual = "\n".join(text for name, text in pages().items() if name.startswith("docs/") and
                       name != "docs/flags.md")
    unexplained = {tool: [name for name, _, _ in flags if not re.search(rf"--(no)?{name}(?!\w)", manual)]
                   for tool, flags in tools.items()}
    assert {tool: names for tool, names in unexplained.items() if names} == {}


def slug(heading):
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_is_a_front_page_and_every_link_resolves():
    texts = pages()
    assert texts["README.md"].count("\n") <= README_MAX_LINES
    anchors = {name: {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}
               for name, text in texts.items()}
    broken = []
    for name, text in texts.items():
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith("http"):
                continue
            path, _, anchor = target.partition("#")
            page = os.path.normpath(os.path.join(os.path.dirname(name), path)) if path else name
            if not os.path.exists(os.path.join(ROOT, page)):
                broken.append(f"{name}: {target} (no such file)")
            elif anchor and anchor not in anchors.get(page, ()):
                broken.append(f"{name}: {target} (no such heading)")
    assert broken == []


def commands():
    """(page, tokens) of every command in a code block, or inline in the text, that runs a tool of ours, docker
    or tensorboard; continuation lines joined, `$ ` prompts, `VAR=value` prefixes and comments dropped."""
    found = []
    for name, text in pages().items():
        lines = []
        for block in re.findall(r"```\w*\n(.*?)```", text, re.S):
            lines += re.sub(r"\\\n\s*", " ", block).splitlines()
        lines += re.findall(r"`((?:python|docker run|tensorboard) [^`]+)`", text)
        for line in lines:
            line = line.strip().removeprefix("$ ")
            line = re.sub(r"^(?:[A-Z_]+=\S+\s+)+", "", line)
            if not re.match(r"(\S*python3?|docker|tensorboard)\s", line):
                continue
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError:  # an inline fragment with an unclosed quote: not a whole command
                continue
            found.append((name, [t.strip("[]") for t in tokens if t.strip("[]")]))
    return found


def tool_of(tokens):
    """(tool as flags.reference names it, or a file to check, its arguments) of a python, docker or tensorboard
    command; (None, []) for what is no tool of ours (python -c, other docker verbs)."""
    if tokens[0] == "docker":
        if tokens[1] != "run" or "resnet-v2" not in tokens:
            return None, []
        options, argv = tokens[2:tokens.index("resnet-v2")], tokens[tokens.index("resnet-v2") + 1:]
        entrypoint = options[options.index("--entrypoint") + 1] if "--entrypoint" in options else None
        if entrypoint is None:
            return "train.py", argv
        tokens = [entrypoint] + argv
    if tokens[0] == "tensorboard":
        return "tensorboard", tokens[1:]
    if tokens[1] == "-c":
        return None, []
    if tokens[1] == "-m":
        return f"-m {tokens[2]}", tokens[3:]
    return tokens[1], tokens[2:]


def test_every_command_names_real_tools_flags_and_files(tools):
    known = {tool: {name for name, _, _ in flags} | set(HELP) for tool, flags in tools.items()}
    board = subprocess.run([os.path.join(os.path.dirname(os.sys.executable), "tensorboard"), "--helpfull"],
                           capture_output=True, text=True).stdout
    known["tensorboard"] = set(re.findall(r"--(?:\[no\])?(\w+)", board))
    wrong, checked = [], 0
    for page, tokens in commands():
        tool, argv = tool_of(tokens)
        if tool is None:
            continue
        checked += 1
        if tool not in known:  # a script or module that is not one of the documented tools: it must exist
            if tool.startswith("-m "):
                missing = importlib.util.find_spec(tool[3:]) is None
            else:
                missing = not os.path.exists(os.path.join(ROOT, tool))
            if missing:
                wrong.append(f"{page}: {' '.join(tokens)}: no {tool}")
            continue
        for arg in argv:
            name = arg[2:].split("=")[0] if arg.startswith("--") else None
            if name and name not in known[tool] and not (name.startswith("no") and name[2:] in known[tool]):
                wrong.append(f"{page}: {' '.join(tokens)}: {tool} has no --{name}")
    assert wrong == [] and checked > 60
