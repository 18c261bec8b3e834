"""The source layout of docs/architecture.md, held to the code: every import goes down the layers, with no arrow
back up and no cycle between modules."""
import ast
import os

from support import ROOT

# Each layer may import the ones before it (and itself); nothing imports an entry point.
TRAINING = ("training.config", "training.errors", "training.compute", "training.distribute", "training.rundir",
            "training.evaluation", "training.benchmark", "training.loop")
PACKAGES = ("console", "model", "data", "flags", "training", "inference")


def modules():
    """{dotted module name: set of the project modules and packages it imports}."""
    found = {}
    for top in PACKAGES:
        for directory, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(directory, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".").removesuffix(".__init__")
                found[dotted] = imports_of(path, dotted)
    return found


def imports_of(path, dotted):
    imported = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.update(f"{node.module}.{a.name}" for a in node.names)  # a module, or a name in one
    return {name for name in imported if name.split(".")[0] in PACKAGES + ("train", "eval", "predict", "export",
                                                                          "benchmark", "pretrained")}


def layer(name):
    """The index of `name`'s training layer, or None outside training/."""
    return next((i for i, prefix in enumerate(TRAINING) if name == prefix or name.startswith(prefix + ".")), None)


def test_imports_go_down_the_layers():
    wrong = []
    for module, imported in modules().items():
        top = module.split(".")[0]
        for name in imported:
            target = name.split(".")[0]
            if target in ("train", "eval", "predict", "export", "benchmark", "pretrained"):
                wrong.append(f"{module} imports the entry point {name}")
            elif top == "training" and target in ("flags", "inference"):
                wrong.append(f"{module} imports {name}")
            elif top == "console" and target != "console":  # every layer may use it: it uses none
                wrong.append(f"{module} imports {name}")
            elif top == "model" and target in ("data", "flags", "training", "inference"):
                wrong.append(f"{module} imports {name}")
            elif top == "data" and target in ("model", "flags", "training", "inference"):
                wrong.append(f"{module} imports {name}")
            elif top == "flags" and target == "inference":
                wrong.append(f"{module} imports {name}")
            elif top == "training" and target == "training" and name != "training":
                mine, theirs = layer(module), layer(name)
                if theirs is not None and mine is not None and theirs > mine:
                    wrong.append(f"{module} (layer {TRAINING[mine]}) imports {name}, a layer above it")
    assert wrong == []


def test_no_module_imports_itself_back_through_others():
    graph = modules()
    known = set(graph)

    def resolve(name):  # "training.compute.step" or "training.compute" (a package: its __init__)
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    edges = {m: {resolve(n) for n in names} - {m, ""} for m, names in graph.items()}
    # Packages' __init__ modules hold only docstrings; an edge to one is no cycle.
    edges = {m: {n for n in targets if graph.get(n) or os.path.exists(os.path.join(ROOT, *n.split(".")) + ".py")}
             for m, targets in edges.items()}
    state, cycle = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in edges.get(node, ()):
            if state.get(nxt) == "open":
                cycle.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycle == [], "\n".join(" -> ".join(c) for c in cycle)
