"""The package's parts import one another in one direction only, and nothing imports in a circle.

The layers, lowest first (a module may import its own layer and those below):

0. foundation — ``errors``, ``io``, ``progress``, ``images`` and the package's ``__init__``;
1. the method — the histogram and its kernel, losses, networks, the configuration, colour difference
   and metrics;
2. ``data/`` — image folders and the synthetic benchmark;
3. ``train/`` — the step, the loop, checkpoints, runtime, jobs, the masker, the DCGAN;
4. using a trained model — ``inference``, reference masks, the colour code, edit directions;
5. ``eval/`` — the evaluation protocol, its report and the latent-space studies;
6. ``book/`` — the main job, notebooks, sweeps and the book's assets (needs the ``book`` extra);
7. the command line.

Imports inside functions count like any other: a cycle dodged by a function-level import is still a
cycle. A new module must be given a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Layer of each top-level module of the package (sub-packages take their layer from PACKAGE_LAYERS).
MODULE_LAYERS = {
    "histgan": 0, "errors": 0, "io": 0, "progress": 0, "images": 0, "srgb": 0,
    "histogram": 1, "histogram_window": 1, "kernel": 1, "losses": 1,
    "config": 1, "colour_difference": 1, "metrics": 1,
    "inference": 4, "reference_mask": 4, "colour_code": 4, "edits": 4, "edit_fitting": 4,
    "cli": 7, "__main__": 7,
}
PACKAGE_LAYERS = {"networks": 1, "data": 2, "train": 3, "eval": 5, "book": 6, "cli": 7}


def module_names(package_dir: Path) -> dict[str, Path]:
    """``histgan.x.y`` → file, for every module of the package folder ``package_dir``."""
    name = package_dir.name
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join((name, *parts))] = path
    return out


def imports_of(path: Path, modules: set[str], package: str) -> set[str]:
    """The package's modules that ``path`` imports anywhere in its source (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names]  # ``from p import m``: the module m
            if not all(n in modules for n in names):  # ... or a name defined in p
                names.append(node.module)
        else:
            continue
        found.update(n for n in names if n.split(".")[0] == package and n in modules)
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module → the package modules it imports (a package's ``__init__`` is not counted as imported by
    its submodules: Python runs it, but nothing flows from it unless named)."""
    files = module_names(package_dir)
    return {m: imports_of(p, set(files), package_dir.name) - {m} for m, p in files.items()}


def layer(module: str) -> int:
    """The layer of ``histgan.<...>`` (see the module docstring); KeyError for a module with none."""
    parts = module.split(".")
    if len(parts) == 1:
        return MODULE_LAYERS["histgan"]
    if parts[1] in PACKAGE_LAYERS and (len(parts) > 2 or parts[1] not in MODULE_LAYERS):
        return PACKAGE_LAYERS[parts[1]]
    return MODULE_LAYERS[parts[1]]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle ``[a, b, ..., a]`` of ``graph``, or ``None`` (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module from a higher layer, as ``"a (layer i) imports b (layer j)"``."""
    return [f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
            for a in sorted(graph) for b in sorted(graph[a]) if layer(b) > layer(a)]


GRAPH = import_graph(ROOT / "histgan")


def test_every_module_has_a_layer():
    missing = []
    for module in GRAPH:
        try:
            layer(module)
        except KeyError:
            missing.append(module)
    assert not missing, f"give these modules a layer in tests/test_layout.py (MODULE_LAYERS): {missing}"


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_imports_go_only_downward():
    assert not upward_imports(GRAPH)


def test_the_method_and_training_never_import_the_book():
    below_book = [m for m in GRAPH if layer(m) < PACKAGE_LAYERS["book"]]
    assert not [f"{m} → {b}" for m in below_book for b in GRAPH[m] if b.startswith("histgan.book")]


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "histgan"
    for rel, text in {"__init__.py": "", "data/__init__.py": "", "book/__init__.py": "", **files}.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    return pkg


def test_the_checks_catch_a_planted_cycle(tmp_path):
    """Two data modules importing each other, one of them only inside a function: a cycle."""
    pkg = _plant(tmp_path, {"data/a.py": "from histgan.data.b import f\n",
                            "data/b.py": "def f():\n    from histgan.data import a\n    return a\n"})
    graph = import_graph(pkg)
    assert graph["histgan.data.a"] == {"histgan.data.b"} and graph["histgan.data.b"] == {"histgan.data.a"}
    assert find_cycle(graph) in (["histgan.data.a", "histgan.data.b", "histgan.data.a"],
                                 ["histgan.data.b", "histgan.data.a", "histgan.data.b"])
    assert find_cycle(import_graph(_plant(tmp_path / "ok", {"data/a.py": "import histgan.data.b\n",
                                                            "data/b.py": "x = 1\n"}))) is None


def test_the_checks_catch_the_method_importing_the_book(tmp_path):
    pkg = _plant(tmp_path, {"histogram.py": "def f():\n    from histgan.book import show\n",
                            "book/show.py": "from histgan import histogram\n"})
    graph = import_graph(pkg)
    assert upward_imports(graph) == ["histgan.histogram (layer 1) imports histgan.book.show (layer 6)"]
    assert find_cycle(graph) is not None


@pytest.mark.parametrize("module", ["histgan.data.x", "histgan.train.loop", "histgan.book", "histgan.cli"])
def test_layers_of_packages_and_their_modules(module):
    expected = {"histgan.data.x": 2, "histgan.train.loop": 3, "histgan.book": 6, "histgan.cli": 7}[module]
    assert layer(module) == expected
