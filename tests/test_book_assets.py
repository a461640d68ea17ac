"""Tests of the kernel-free explorer (histgan.book.static_slider) and the offline assets (histgan.book.offline_assets).

No network and no browser here: npm is faked where it would run (tests/test_browser.py drives the
real thing).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from histgan.errors import HistganError
from histgan.histogram import hard_histogram, soft_histogram
from histgan.book.offline_assets import (
    ASSETS,
    OFFLINE_DIR,
    STATIC_DIR,
    _drop_duplicate_inline_scripts,
    _on_builder_inited,
    install_node_modules,
    prepare_offline_assets,
)
from histgan.book.static_slider import explorer_html, histogram_explorer, histogram_frames

ROOT = Path(__file__).resolve().parents[1]


def _image(seed=0, h=16, w=12):
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---- frames -------------------------------------------------------------------------------------

def test_frames_are_the_soft_and_counting_histograms_of_the_grid():
    image = _image()
    frames = histogram_frames(image, bins_values=(16, 4), bandwidths=(0.2, 0.01))
    assert frames["bins"] == [4, 16] and frames["bandwidths"] == [0.01, 0.2]  # sorted
    for i, K in enumerate(frames["bins"]):
        assert torch.allclose(torch.tensor(frames["hard"][i]), hard_histogram(image[None], K)[0], atol=6e-6)
        for j, B in enumerate(frames["bandwidths"]):
            expected = soft_histogram(image[None], K, B)[0]
            assert torch.tensor(frames["soft"][i][j]).shape == (3, K)
            assert torch.allclose(torch.tensor(frames["soft"][i][j]), expected, atol=6e-6)  # 5 decimals


def test_constant_image_gives_the_analytic_two_bin_histogram():
    # z = 0 on the shared edge of K = 2 bins: P(0) = σ((0 + 1)/B) − σ(0/B) = σ(1/B) − 1/2 = P(1).
    frames = histogram_frames(torch.zeros(3, 4, 4), bins_values=(2,), bandwidths=(0.5,))
    expected = 1 / (1 + math.exp(-2.0)) - 0.5
    for channel in frames["soft"][0][0]:
        assert channel == pytest.approx([expected, expected], abs=1e-5)


def test_mask_restricts_the_frames_to_the_foreground():
    image = _image()
    mask = torch.zeros(1, 1, 16, 12)
    mask[..., :8, :] = 1
    masked = histogram_frames(image, (8,), (0.1,), mask=mask)["soft"][0][0]
    assert torch.allclose(torch.tensor(masked), soft_histogram(image[None, :, :8, :], 8, 0.1)[0], atol=6e-6)
    assert masked != histogram_frames(image, (8,), (0.1,))["soft"][0][0]


@pytest.mark.parametrize("kwargs", [
    {"bins_values": ()}, {"bins_values": (0,)}, {"bins_values": (2.5,)}, {"bins_values": (True,)},
    {"bins_values": (4, 4)}, {"bandwidths": ()}, {"bandwidths": (-0.1,)}, {"bandwidths": (float("nan"),)},
    {"bandwidths": (0.1, 0.1)},
])
def test_bad_grids_name_the_parameter(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        histogram_frames(_image(), **kwargs)


@pytest.mark.parametrize("image", [torch.zeros(1, 8, 8), torch.zeros(2, 3, 8, 8), torch.zeros(8, 8), [[0.0]]])
def test_bad_images_are_rejected(image):
    with pytest.raises(ValueError, match="image"):
        histogram_frames(image)


def test_out_of_range_image_is_rejected_by_the_histogram():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        histogram_frames(_image() * 3)


# ---- HTML ---------------------------------------------------------------------------------------

def _data(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" class="hx-data">(.*?)</script>', html, re.S)
                      .group(1).replace("<\\/", "</"))


def test_html_holds_the_frames_two_sliders_and_loads_nothing():
    image = _image()
    html = histogram_explorer(image).data
    frames = _data(html)
    assert frames == histogram_frames(image)
    k_max = re.search(r'class="hx-K" min="0" max="(\d+)" step="1" value="(\d+)"', html)
    b_max = re.search(r'class="hx-B" min="0" max="(\d+)" step="1" value="(\d+)"', html)
    assert int(k_max.group(1)) == len(frames["bins"]) - 1 and int(b_max.group(1)) == len(frames["bandwidths"]) - 1
    # starts at the package defaults K = 32, B = L = 2/32
    assert frames["bins"][int(k_max.group(2))] == 32 and frames["bandwidths"][int(b_max.group(2))] == 2 / 32
    assert all(v.startswith("data:") for v in re.findall(r'(?:src|href)="([^"]*)"', html))
    ids = {re.search(r'id="(hx-[^"]+)"', histogram_explorer(image).data).group(1) for _ in range(3)}
    assert len(ids) == 3


def test_initial_frame_must_be_on_the_grid():
    frames = histogram_frames(_image(), (4, 8), (0.1, 0.2))
    html = explorer_html(frames, initial=(8, 0.1))
    assert 'class="hx-K" min="0" max="1" step="1" value="1"' in html
    assert 'class="hx-B" min="0" max="1" step="1" value="0"' in html
    for bad in [(16, 0.1), (8, 0.15)]:
        with pytest.raises(ValueError, match="initial"):
            explorer_html(frames, initial=bad)


# ---- offline assets -----------------------------------------------------------------------------

VERSIONS = {"requirejs": "2.3.8", "@jupyter-widgets/html-manager": "1.0.15", "mathjax": "3.2.2"}


def _fake_project(root: Path, installed: dict | None = VERSIONS) -> None:
    """package files pinning VERSIONS; a node_modules holding ``installed`` versions (None: none)."""
    (root / "package.json").write_text(json.dumps({"dependencies": VERSIONS}))
    lock = {"packages": {f"node_modules/{n}": {"version": v} for n, v in VERSIONS.items()}}
    (root / "package-lock.json").write_text(json.dumps(lock))
    if installed is None:
        return
    nm = root / "node_modules"
    for name, version in installed.items():
        (nm / name).mkdir(parents=True, exist_ok=True)
        (nm / name / "package.json").write_text(json.dumps({"version": version}))
    (nm / "requirejs/require.js").write_text("var requirejs;")
    dist = nm / "@jupyter-widgets/html-manager/dist"
    dist.mkdir(parents=True)
    for name in ("embed-amd.js", "font.woff2", "embed.js.map", "libembed-amd.js"):
        (dist / name).write_text(name)
    (nm / "mathjax/es5/output/chtml/fonts").mkdir(parents=True)
    (nm / "mathjax/es5/tex-mml-chtml.js").write_text("mathjax")
    (nm / "mathjax/es5/output/chtml/fonts/a.woff").write_text("font")
    (nm / "mathjax/es5/tex-mml-chtml.js.map").write_text("map")


def _fake_npm(tmp_path: Path, monkeypatch, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text("#!/bin/sh\n" + script)
    (bin_dir / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_assets_are_copied_without_source_maps_and_only_once(tmp_path, monkeypatch):
    _fake_project(tmp_path)
    _fake_npm(tmp_path, monkeypatch, "echo npm must not run >&2; exit 1\n")  # versions match: no npm
    dest = prepare_offline_assets(tmp_path)
    assert dest == tmp_path / STATIC_DIR / OFFLINE_DIR
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == [".package-lock.sha256", "html-manager/embed-amd.js", "html-manager/font.woff2",
                     "mathjax/output/chtml/fonts/a.woff", "mathjax/tex-mml-chtml.js", "require.js"]
    (dest / "require.js").write_text("changed")
    prepare_offline_assets(tmp_path)  # same lock: the copy is trusted as it is
    assert (dest / "require.js").read_text() == "changed"


def test_npm_ci_runs_when_the_installed_versions_differ_from_the_lock(tmp_path, monkeypatch):
    _fake_project(tmp_path, installed={**VERSIONS, "mathjax": "3.2.1"})
    _fake_npm(tmp_path, monkeypatch, f'echo "$@" > "{tmp_path}/npm-args"\n')
    assert install_node_modules(tmp_path) is True
    assert (tmp_path / "npm-args").read_text().split()[0] == "ci"
    (tmp_path / "npm-args").unlink()
    ok = tmp_path / "ok"
    ok.mkdir()
    _fake_project(ok)
    assert install_node_modules(ok) is False and not (tmp_path / "npm-args").exists()


def test_npm_errors_say_what_to_do(tmp_path, monkeypatch):
    _fake_project(tmp_path, installed=None)
    _fake_npm(tmp_path, monkeypatch, "echo 'getaddrinfo ENOTFOUND registry.npmjs.org' >&2; exit 1\n")
    with pytest.raises(HistganError, match="npm ci.*failed.*ENOTFOUND"):
        prepare_offline_assets(tmp_path)
    assert not (tmp_path / STATIC_DIR / OFFLINE_DIR).exists()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(HistganError, match="npm was not found"):
        install_node_modules(tmp_path)
    (tmp_path / "package-lock.json").unlink()
    with pytest.raises(HistganError, match="package-lock.json"):
        install_node_modules(tmp_path)


def test_config_points_at_the_copied_assets_and_versions_are_pinned():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    sphinx = config["sphinx"]["config"]
    assert "histgan.book.offline_assets" in config["sphinx"]["extra_extensions"]
    assert STATIC_DIR in sphinx["html_static_path"]
    targets = {target for _, target, _ in ASSETS}
    for path in [sphinx["mathjax_path"], *sphinx["nb_ipywidgets_js"]]:
        assert "://" not in path
        top = path.split("/")[1] if path.startswith(OFFLINE_DIR + "/") else None
        assert top in targets or (ROOT / STATIC_DIR / path).is_file(), path
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    for name, version in package["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} must be pinned exactly"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version


def test_extension_requires_the_static_path(tmp_path):
    app = SimpleNamespace(builder=SimpleNamespace(format="html"), srcdir=str(tmp_path),
                          config=SimpleNamespace(html_static_path=["_static"]))
    with pytest.raises(HistganError, match="html_static_path"):
        _on_builder_inited(app)


def test_duplicate_inline_scripts_are_dropped_once():
    js = lambda filename, **attributes: SimpleNamespace(filename=filename, attributes=attributes)  # noqa: E731
    a, a2, b = js(None, body="const X = 1"), js("", body="const X = 1"), js(None, body="y")
    f1, f2 = js("a.js"), js("a.js")
    context = {"script_files": [a, f1, b, a2, f2]}
    _drop_duplicate_inline_scripts(None, "page", "page.html", context, None)
    assert context["script_files"] == [a, f1, b, f2]  # files are Sphinx's business, inline copies ours
