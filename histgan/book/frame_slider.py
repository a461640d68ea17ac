"""A kernel-free slider over precomputed images: a morph's frames switched in the browser.

Like the histogram explorer of :mod:`histgan.book.static_slider` (kept apart so that neither page re-runs when
the other's slider changes), the notebook computes every frame when it executes and returns one
self-contained HTML block (the frames as PNG ``data:`` URIs, an ``<input type="range">``, an ``<img>``
and a few lines of JavaScript), so the slider works in the built book with no kernel.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
from typing import Sequence

from torch import Tensor

from histgan.images import to_uint8

__all__ = ["png_data_uri", "frame_slider_html", "frame_slider"]

_counter = itertools.count()
_SCRIPT = r"""
(function () {
  var root = document.getElementById("%(id)s"); if (!root || root.dataset.ready) return;
  var d = JSON.parse(root.querySelector("script.fs-data").textContent);
  var s = root.querySelector("input.fs-t"), img = root.querySelector("img.fs-frame"), o = root.querySelector("output");
  function draw() { img.src = d.frames[+s.value]; o.textContent = d.labels[+s.value]; root.dataset.frame = s.value; }
  s.addEventListener("input", draw); draw(); root.dataset.ready = "1";
})();
"""


def png_data_uri(image: Tensor) -> str:
    """A ``data:`` URI of an image ``(3, H, W)`` in [-1, 1] as a PNG (embedded, so the page loads nothing)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image.detach().cpu())).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def frame_slider_html(uris: Sequence[str], labels: Sequence[str], caption: str = "", width: int = 480) -> str:
    """HTML of a slider over images given as ``data:`` URIs, one label per frame (shown as the read-out).

    Raises:
        ValueError: no frames, or a label count that differs from the frame count.
    """
    if not uris or len(uris) != len(labels):
        raise ValueError(f"need one label per frame and at least one frame, got {len(uris)} frames and "
                         f"{len(labels)} labels")
    data = json.dumps({"frames": list(uris), "labels": list(labels)}, separators=(",", ":")).replace("</", "<\\/")
    uid = f"fs-{hashlib.sha256(data.encode()).hexdigest()[:12]}-{next(_counter)}"
    return f"""<div class="histgan-frames" id="{uid}" style="font-family:sans-serif;font-size:14px">
<label>{html.escape(caption)} <input type="range" class="fs-t" min="0" max="{len(uris) - 1}" step="1" value="0"
 aria-label="frame"> <output>{html.escape(labels[0])}</output></label><br>
<img class="fs-frame" src="{uris[0]}" alt="{html.escape(caption) or 'frame'}" width="{width}"
 style="image-rendering:pixelated">
<script type="application/json" class="fs-data">{data}</script>
<script>{_SCRIPT % {"id": uid}}</script></div>"""


def frame_slider(frames: Sequence[Tensor], labels: Sequence[str], caption: str = "", width: int = 480):
    """Kernel-free slider over images ``(3, H, W)`` in [-1, 1], for a notebook cell's output.

    Returns:
        ``IPython.display.HTML`` of :func:`frame_slider_html`.
    """
    from IPython.display import HTML

    uris = [png_data_uri(f) for f in frames]
    return HTML(frame_slider_html(uris, labels, caption, width))
