"""The browser assets the book serves itself, so that no page requests another host.

Jupyter Book 1 pages load require.js and the ipywidgets HTML manager (for the widget state papermill
stores) and MathJax (for the equations) from public CDNs: offline, the sliders are missing and the
mathematics stays raw. This module fetches pinned copies from the npm registry at build time and
copies the files the pages load into the book's static folder:

* ``package.json`` / ``package-lock.json`` at the project root pin the versions; ``npm ci`` installs
  them into ``node_modules/`` (ignored by git), only when what is installed differs from the lock;
* :data:`ASSETS` lists what is copied into ``book/_static/offline/`` (ignored by git), which Sphinx
  publishes as ``_static/offline/``; ``_config.yml`` points ``nb_ipywidgets_js`` and ``mathjax_path``
  at those files.

It is also a Sphinx extension (``sphinx: extra_extensions: [histgan.book.offline_assets]`` in
``_config.yml``): every HTML build of the book prepares the assets first, however it is started.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from histgan.errors import HistganError
from histgan.io import atomic_write_text

__all__ = ["ASSETS", "STATIC_DIR", "OFFLINE_DIR", "install_node_modules", "prepare_offline_assets", "setup"]

#: The book's static folder (``html_static_path``), relative to the project root.
STATIC_DIR = "book/_static"
#: Where the copied assets go, relative to :data:`STATIC_DIR` (and to ``_static/`` in the HTML).
OFFLINE_DIR = "offline"
#: ``(source under node_modules/, destination under offline/, file patterns)``: a file or a folder.
ASSETS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("requirejs/require.js", "require.js", ()),
    # embed-amd.js and the Font Awesome files its CSS refers to by relative URL (no source maps).
    ("@jupyter-widgets/html-manager/dist", "html-manager", ("embed-amd.js", "*.woff2", "*.woff", "*.ttf",
                                                           "*.eot", "*.svg")),
    # MathJax 3 loads its fonts and extensions relative to its own script: the whole es5 folder.
    ("mathjax/es5", "mathjax", ("*",)),
)
#: Packages whose installed version must equal the lock file's before the copy is trusted.
_PINNED = ("requirejs", "@jupyter-widgets/html-manager", "mathjax")
_STAMP = ".package-lock.sha256"


def _lock_versions(root: Path) -> dict[str, str]:
    lock = root / "package-lock.json"
    if not (root / "package.json").is_file() or not lock.is_file():
        raise HistganError(f"{root} must hold package.json and package-lock.json (the pinned book assets); "
                           "restore them from git")
    packages = json.loads(lock.read_text(encoding="utf-8")).get("packages", {})
    return {name: packages.get(f"node_modules/{name}", {}).get("version", "?") for name in _PINNED}


def _installed_versions(root: Path) -> dict[str, str]:
    out = {}
    for name in _PINNED:
        manifest = root / "node_modules" / name / "package.json"
        out[name] = json.loads(manifest.read_text(encoding="utf-8"))["version"] if manifest.is_file() else None
    return out


def install_node_modules(root: str | os.PathLike) -> bool:
    """Run ``npm ci`` in ``root`` unless ``node_modules/`` already holds the locked versions.

    Args:
        root: the folder holding ``package.json`` and ``package-lock.json``.

    Returns:
        True if npm ran, False if the installed packages already matched the lock.

    Raises:
        HistganError: when the package files are missing, npm is not installed, or ``npm ci`` fails
            (no access to the npm registry, say); the message says what to do.
    """
    root = Path(root)
    if _installed_versions(root) == _lock_versions(root):
        return False
    npm = shutil.which("npm")
    if npm is None:
        raise HistganError("npm was not found: the book fetches MathJax and the widget manager with npm; "
                           "install Node.js >= 18 with npm (e.g. apt-get install nodejs npm)")
    cmd = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise HistganError(f"'npm ci' in {root} failed (exit {done.returncode}); the book needs the npm "
                           f"registry once to fetch its browser assets: {' | '.join(tail)}")
    return True


def _copy_assets(node_modules: Path, dest: Path) -> None:
    for source, target, patterns in ASSETS:
        src = node_modules / source
        if not src.exists():
            raise HistganError(f"{src} is missing after npm ci; delete {node_modules} and build again")
        if not patterns:
            shutil.copy2(src, dest / target)
            continue
        for pattern in patterns:
            for path in src.rglob(pattern):
                if path.is_file() and not path.name.endswith(".map"):
                    out = dest / target / path.relative_to(src)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, out)


def prepare_offline_assets(root: str | os.PathLike, static_dir: str | os.PathLike | None = None) -> Path:
    """Install the pinned npm packages (if needed) and copy the book's assets into its static folder.

    The copy is assembled in a temporary folder beside the destination and swapped in whole, so a
    reader (a running build) never sees half of it; it is skipped when the destination already
    holds the copy made from the current ``package-lock.json``.

    Args:
        root: the project root, holding ``package.json`` and ``package-lock.json``.
        static_dir: the book's static folder; default ``root / STATIC_DIR``.

    Returns:
        The folder of copied assets, ``static_dir / OFFLINE_DIR``.
    """
    root = Path(root)
    static = Path(static_dir) if static_dir is not None else root / STATIC_DIR
    dest = static / OFFLINE_DIR
    lock_hash = hashlib.sha256((root / "package-lock.json").read_bytes()).hexdigest() \
        if (root / "package-lock.json").is_file() else ""
    stamp = dest / _STAMP
    if lock_hash and stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == lock_hash:
        return dest
    install_node_modules(root)
    static.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{OFFLINE_DIR}.", dir=static))
    try:
        _copy_assets(root / "node_modules", tmp)
        atomic_write_text(tmp / _STAMP, lock_hash + "\n")
        old = None
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{OFFLINE_DIR}.old.", dir=static))
            os.replace(dest, old / OFFLINE_DIR)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _on_builder_inited(app: Any) -> None:
    """Sphinx hook: prepare the assets before an HTML build reads any page."""
    if app.builder.format != "html":
        return
    srcdir = Path(app.srcdir)
    static_paths = [Path(p) for p in app.config.html_static_path]
    if Path(STATIC_DIR) not in static_paths:
        raise HistganError(f"_config.yml must list '{STATIC_DIR}' in sphinx.config.html_static_path "
                           f"(the offline assets are copied to {STATIC_DIR}/{OFFLINE_DIR}), got {static_paths}")
    prepare_offline_assets(srcdir, srcdir / STATIC_DIR)


def _on_config_inited(app: Any, config: Any) -> None:
    """Sphinx hook: create the static folder before Sphinx drops missing ``html_static_path`` entries."""
    (Path(app.srcdir) / STATIC_DIR).mkdir(parents=True, exist_ok=True)


def _drop_duplicate_inline_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Sphinx hook: keep the first of identical inline ``<script>`` blocks of a page.

    Under Jupyter Book 1, sphinx-thebe 0.3.1 adds its inline configuration (``const THEBE_JS_URL
    = ...``) twice, and the second copy throws "Identifier 'THEBE_JS_URL' has already been
    declared" on every page.
    """
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, kept = set(), []
    for js in scripts:
        attributes = getattr(js, "attributes", {})
        inline = not getattr(js, "filename", None) and "body" in attributes  # filename is None or ''
        key = tuple(sorted(attributes.items()))
        if inline and key in seen:
            continue
        if inline:
            seen.add(key)
        kept.append(js)
    context["script_files"] = kept


def setup(app: Any) -> dict[str, Any]:
    """Sphinx extension entry point (``extra_extensions: [histgan.book.offline_assets]``)."""
    app.connect("config-inited", _on_config_inited, priority=100)
    app.connect("builder-inited", _on_builder_inited)
    app.connect("html-page-context", _drop_duplicate_inline_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
