"""A kernel-free B/K explorer of the soft histogram: precomputed frames switched in the browser.

An ipywidgets slider needs a running kernel to redraw its plot; in the static book it only moves.
:func:`histogram_explorer` instead computes the soft histogram (eq (3)–(4), :func:`soft_histogram`)
of one image for every pair of a grid of bin counts ``K`` and bandwidths ``B`` when the notebook
executes, and returns one self-contained HTML block: the numbers as JSON, two
``<input type="range">`` sliders, an SVG and a few lines of JavaScript that draw the frame the
sliders select. It needs no kernel, no server and no other file, so it works in the built book, in
JupyterLab (once the cell has run) and in any HTML export.

Each channel's panel shows the counting histogram (:func:`hard_histogram`, grey bars) and the soft
histogram (coloured line) as densities ``P(k) / L`` (``L = 2 / K``), so heights are comparable
across ``K``; the y-axis is shared by all bandwidths of one ``K``, so a wider kernel visibly flattens
the peaks. The title of each panel gives ``Σ_k P(k)``: less than 1 by the kernel tails beyond ±1.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import math
from typing import Sequence

import torch
from torch import Tensor

from histgan.histogram import DEFAULT_BINS, bin_width, default_bandwidth, hard_histogram, soft_histogram
from histgan.images import to_uint8

__all__ = ["DEFAULT_EXPLORER_BINS", "DEFAULT_EXPLORER_BANDWIDTHS", "histogram_frames", "explorer_html",
           "histogram_explorer"]

#: Bin counts ``K`` the explorer offers.
DEFAULT_EXPLORER_BINS: tuple[int, ...] = (4, 8, 16, 32, 64)
#: Bandwidths ``B``: the bin widths ``L`` of ``K = 256 … 8``, so the package default ``B = L`` is on the grid.
DEFAULT_EXPLORER_BANDWIDTHS: tuple[float, ...] = tuple(bin_width(K) for K in (256, 128, 64, 32, 16, 8))
_DIGITS = 5  # decimals kept of each bin mass P(k) in the JSON (masses are at most 1)
_counter = itertools.count()


def _check_grid(bins_values: Sequence[int], bandwidths: Sequence[float]) -> tuple[list[int], list[float]]:
    bins_list, bw_list = list(bins_values), list(bandwidths)
    if not bins_list or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in bins_list):
        raise ValueError(f"bins_values must be a non-empty sequence of positive integers, got {bins_values!r}")
    if not bw_list or any(not math.isfinite(float(b)) or float(b) <= 0 for b in bw_list):
        raise ValueError(f"bandwidths must be a non-empty sequence of positive numbers, got {bandwidths!r}")
    if len(set(bins_list)) != len(bins_list) or len(set(bw_list)) != len(bw_list):
        raise ValueError("bins_values and bandwidths must not repeat a value (each is one slider position)")
    return sorted(bins_list), sorted(float(b) for b in bw_list)


def _as_batch(image: Tensor) -> Tensor:
    if not isinstance(image, Tensor) or image.dim() not in (3, 4) or (image.dim() == 4 and image.shape[0] != 1) \
            or image.shape[-3] != 3:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be an RGB (3, H, W) or (1, 3, H, W) tensor in [-1, 1], got {shape}")
    return image.unsqueeze(0) if image.dim() == 3 else image


def histogram_frames(
    image: Tensor,
    bins_values: Sequence[int] = DEFAULT_EXPLORER_BINS,
    bandwidths: Sequence[float] = DEFAULT_EXPLORER_BANDWIDTHS,
    mask: Tensor | None = None,
) -> dict:
    """The explorer's data: soft histograms of ``image`` for every ``(K, B)`` of the grid (eq 3–4).

    Args:
        image: ``(3, H, W)`` or ``(1, 3, H, W)`` float tensor in [-1, 1].
        bins_values: bin counts ``K`` (distinct positive integers; sorted in the result).
        bandwidths: bandwidths ``B`` (distinct positive numbers; sorted in the result).
        mask: optional ``(1, 1, H, W)`` foreground weights, as for :func:`soft_histogram`.

    Returns:
        JSON-ready dict: ``bins`` (the K values), ``bandwidths`` (the B values), ``soft``
        (``soft[i][j][c]`` = list of ``K_i`` masses ``P(k)`` for ``K_i``, ``B_j``, channel ``c``, rounded
        to 5 decimals) and ``hard`` (``hard[i][c]``, the counting histogram at ``K_i``).
    """
    bins_list, bw_list = _check_grid(bins_values, bandwidths)
    images = _as_batch(image).detach()

    def rounded(h: Tensor) -> list[list[float]]:
        return [[round(float(v), _DIGITS) for v in channel] for channel in h[0]]

    with torch.no_grad():
        soft = [[rounded(soft_histogram(images, bins=k, bandwidth=b, mask=mask)) for b in bw_list] for k in bins_list]
        hard = [rounded(hard_histogram(images, bins=k, mask=mask)) for k in bins_list]
    return {"bins": bins_list, "bandwidths": bw_list, "soft": soft, "hard": hard}


def _png_data_uri(image: Tensor, max_side: int = 96) -> str:
    from PIL import Image

    pil = Image.fromarray(to_uint8(_as_batch(image)[0].detach().cpu()))
    pil.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_SCRIPT = r"""
(function () {
  var root = document.getElementById("%(id)s"); if (!root || root.dataset.ready) return;
  var d = JSON.parse(root.querySelector("script.hx-data").textContent);
  var sk = root.querySelector("input.hx-K"), sb = root.querySelector("input.hx-B");
  var colours = ["#d62728", "#2ca02c", "#1f77b4"], W = 480, H = 92, NS = "http://www.w3.org/2000/svg";
  function el(tag, attrs, parent) { var e = document.createElementNS(NS, tag);
    for (var a in attrs) e.setAttribute(a, attrs[a]); parent.appendChild(e); return e; }
  function draw() {
    var i = +sk.value, j = +sb.value, K = d.bins[i], B = d.bandwidths[j], L = 2 / K;
    var soft = d.soft[i][j], hard = d.hard[i], top = 0;
    function peak(c) { c.forEach(function (p) { top = Math.max(top, p / L); }); }  // y-axis: all B of this K
    d.soft[i].forEach(function (f) { f.forEach(peak); }); hard.forEach(peak);
    root.querySelector(".hx-K-out").textContent = K;
    root.querySelector(".hx-B-out").textContent = B.toPrecision(3) + " (= " + (B / L).toPrecision(3) + " L)";
    var svg = root.querySelector("svg.hx-plot"); while (svg.firstChild) svg.removeChild(svg.firstChild);
    soft.forEach(function (ch, c) {
      var g = el("g", {transform: "translate(30," + (c * (H + 22) + 18) + ")"}, svg), bw = W / K;
      function y(p) { return H - H * p / L / top; }  // density P(k) / L, scaled to the panel
      hard[c].forEach(function (p, k) {
        el("rect", {x: k * bw, y: y(p), width: Math.max(bw - 1, 0.5), height: H - y(p), fill: "#ccc"}, g); });
      var pts = ch.map(function (p, k) { return (k * bw) + "," + y(p) + " " + ((k + 1) * bw) + "," + y(p); }).join(" ");
      el("polyline", {points: pts, fill: "none", stroke: colours[c], "stroke-width": 2, "class": "hx-soft"}, g);
      el("line", {x1: 0, y1: H, x2: W, y2: H, stroke: "#444"}, g);
      var t = el("text", {x: 0, y: -4, "font-size": 12}, g);
      t.textContent = "RGB"[c] + " channel: soft histogram (line) vs counting histogram (bars); sum of P(k) = "
        + ch.reduce(function (a, b) { return a + b; }, 0).toFixed(4);
    });
    root.dataset.frame = "K=" + K + ",B=" + B;
  }
  sk.addEventListener("input", draw); sb.addEventListener("input", draw); draw(); root.dataset.ready = "1";
})();
"""


def explorer_html(frames: dict, image_uri: str | None = None, initial: tuple[int, float] | None = None) -> str:
    """The explorer's HTML (sliders, SVG, data and script) for :func:`histogram_frames` output.

    Args:
        frames: the dict returned by :func:`histogram_frames`.
        image_uri: optional ``data:`` URI of the image, shown beside the sliders.
        initial: ``(K, B)`` the sliders start at (both on the grid); default ``K = DEFAULT_BINS`` with
            ``B = L`` (the package defaults) when on the grid, else the middle of each slider.

    Returns:
        One ``<div class="histgan-explorer">`` with a unique id; it loads nothing from anywhere.
    """
    bins_list, bw_list = frames["bins"], frames["bandwidths"]
    i, j = len(bins_list) // 2, len(bw_list) // 2
    if initial is None and DEFAULT_BINS in bins_list and default_bandwidth(DEFAULT_BINS) in bw_list:
        i, j = bins_list.index(DEFAULT_BINS), bw_list.index(default_bandwidth(DEFAULT_BINS))
    elif initial is not None:
        K0, B0 = initial
        matches = [n for n, b in enumerate(bw_list) if math.isclose(b, float(B0), rel_tol=1e-9)]
        if K0 not in bins_list or not matches:
            raise ValueError(f"initial must be a (K, B) pair on the grid K in {bins_list}, B in {bw_list}, "
                             f"got {initial!r}")
        i, j = bins_list.index(K0), matches[0]
    data = json.dumps(frames, separators=(",", ":")).replace("</", "<\\/")
    # Same frames, same id on every run (stable notebook diffs); the counter separates copies on a page.
    uid = f"hx-{hashlib.sha256(data.encode()).hexdigest()[:12]}-{next(_counter)}"
    picture = (f'<img src="{image_uri}" alt="the image whose histogram is shown" class="hx-image" width="96" '
               'style="image-rendering:pixelated">') if image_uri else ""
    height = 3 * (92 + 22) + 12
    return f"""<div class="histgan-explorer" id="{uid}" style="font-family:sans-serif;font-size:14px">
<div style="display:flex;gap:16px;align-items:center;flex-wrap:wrap">{picture}
<label>bins K <input type="range" class="hx-K" min="0" max="{len(bins_list) - 1}" step="1" value="{i}"
 aria-label="bins K"> <output class="hx-K-out">{bins_list[i]}</output></label>
<label>bandwidth B <input type="range" class="hx-B" min="0" max="{len(bw_list) - 1}" step="1" value="{j}"
 aria-label="bandwidth B"> <output class="hx-B-out">{bw_list[j]:.3g}</output></label></div>
<svg class="hx-plot" viewBox="0 0 520 {height}" width="520" height="{height}" role="img"
 aria-label="soft histograms of the R, G and B channels"><text x="10" y="20">(this plot is drawn by
 JavaScript: in JupyterLab run the cell, or trust the notebook)</text></svg>
<script type="application/json" class="hx-data">{data}</script>
<script>{_SCRIPT % {"id": uid}}</script></div>"""


def histogram_explorer(
    image: Tensor,
    bins_values: Sequence[int] = DEFAULT_EXPLORER_BINS,
    bandwidths: Sequence[float] = DEFAULT_EXPLORER_BANDWIDTHS,
    mask: Tensor | None = None,
    initial: tuple[int, float] | None = None,
):
    """Kernel-free B/K explorer of the soft histogram of ``image``, for a notebook cell's output.

    Args:
        image: ``(3, H, W)`` or ``(1, 3, H, W)`` float tensor in [-1, 1].
        bins_values: bin counts ``K`` offered by the K slider.
        bandwidths: bandwidths ``B`` offered by the B slider.
        mask: optional ``(1, 1, H, W)`` foreground weights (background excluded, as in training).
        initial: ``(K, B)`` the sliders start at, on the grid; default as in :func:`explorer_html`.

    Returns:
        ``IPython.display.HTML`` holding :func:`explorer_html` of :func:`histogram_frames`.
    """
    from IPython.display import HTML

    frames = histogram_frames(image, bins_values, bandwidths, mask)
    return HTML(explorer_html(frames, _png_data_uri(image), initial))
