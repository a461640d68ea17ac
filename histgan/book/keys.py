"""What a stage's key hashes: its parameters, the contents of its input files and the keys of the stages
it reads. A notebook's inputs are the notebook and the package modules its cells import, transitively
(:func:`notebook_sources`); a stage that calls package code hashes that code's modules the same way
(:func:`module_sources`). A stage whose key is unchanged and whose outputs exist is skipped.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import Sequence

from histgan.book.job import Stage

__all__ = ["digest", "histgan_imports", "module_file", "module_sources", "notebook_sources", "stage_key"]


def digest(paths: Sequence[Path]) -> str:
    """SHA-256 over the names and contents of ``paths`` (sorted, duplicates once; a missing file counts
    as ``<missing>``)."""
    h = hashlib.sha256()
    for path in sorted(set(paths)):
        h.update(str(path).encode())
        h.update(path.read_bytes() if path.is_file() else b"<missing>")
    return h.hexdigest()


def histgan_imports(tree: ast.AST) -> set[str]:
    """Names of the ``histgan`` modules a parsed source imports anywhere (also inside functions)."""
    from histgan import _EXPORTS  # the public names ``histgan.<name>`` imports on first use

    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "histgan")
            if any(a.name == "histgan" for a in node.names):  # ``histgan.fit(...)`` may follow: its modules too
                found.update(f"histgan.{m}" for m in _EXPORTS.values())
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "histgan":
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)  # kept only if it is a module
            if node.module == "histgan":
                found.update(f"histgan.{_EXPORTS[a.name]}" for a in node.names if a.name in _EXPORTS)
    return found


def module_file(root: Path, name: str) -> Path:
    """The file of module ``name`` (``histgan.data.folders`` → ``histgan/data/folders.py``; a package →
    its ``__init__.py``)."""
    path = root.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def module_sources(root: Path, modules: set[str]) -> list[Path]:
    """The package files of ``modules`` and of everything they import, transitively (the ``__init__`` of
    every package on the way included: importing a submodule runs them)."""
    todo, seen = {"histgan", *modules}, set()
    while todo:
        name = todo.pop()
        if name in seen or not module_file(root, name).is_file():
            continue
        seen.add(name)
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        todo |= (histgan_imports(ast.parse(module_file(root, name).read_text(encoding="utf-8"))) | parents) - seen
    return sorted(module_file(root, n) for n in seen)


def notebook_sources(root: Path, notebook: Path) -> list[Path]:
    """What a notebook runs besides its own cells: the package modules its code imports, transitively."""
    import jupytext

    modules: set[str] = set()
    for cell in jupytext.read(notebook).cells:
        if cell.cell_type == "code":
            try:
                modules |= histgan_imports(ast.parse(cell.source))
            except SyntaxError:  # a cell with IPython magics: no imports of ours to find there
                continue
    return module_sources(root, modules)


def stage_key(stage: Stage, upstream: dict[str, str]) -> str:
    """The key of ``stage``: SHA-256 of its parameters, its inputs' :func:`digest` and the keys in
    ``upstream`` of the stages it ``needs``."""
    record = {"params": stage.params, "inputs": digest(stage.inputs),
              "needs": {n: upstream.get(n, "") for n in stage.needs}}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
