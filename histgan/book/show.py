"""What the book's notebooks use to show things (never to define the method): source, figures, memory."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from torch import Tensor

from histgan.images import to_display

__all__ = ["plot_soft_vs_hard", "show_source", "saved_tensor_bytes", "docstring_markdown", "show_doc"]


def plot_soft_vs_hard(images: Tensor, bins: int, bandwidth: float | None = None, masks: Tensor | None = None,
                      titles: Sequence[str] | None = None):
    """Soft (eq 3–4) against counting histograms, one row per image: the image, then R, G, B.

    Args:
        images: ``(N, 3, H, W)`` tensor in [-1, 1].
        bins: number of bins ``K``.
        bandwidth: bandwidth ``B``; ``None`` means ``B = L = 2 / K``.
        masks: optional ``(N, 1, H, W)`` foreground weights; background pixels are excluded.
        titles: optional ``N`` row titles.

    Returns:
        the matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    from histgan.histogram import bin_width, default_bandwidth, hard_histogram, soft_histogram

    B = default_bandwidth(bins) if bandwidth is None else float(bandwidth)
    soft = soft_histogram(images.detach(), bins, B, masks)
    hard = hard_histogram(images.detach(), bins, masks)
    n, L = images.shape[0], bin_width(bins)
    centres = -1.0 + (np.arange(bins) + 0.5) * L
    fig, axes = plt.subplots(n, 4, figsize=(12, 2.6 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [0.8, 1, 1, 1]})
    for i in range(n):
        shown = images[i] if masks is None else images[i] * masks[i] + (masks[i] - 1.0) * 0.5
        axes[i, 0].imshow(to_display(shown))
        axes[i, 0].set_axis_off()
        axes[i, 0].set_title(titles[i] if titles else f"image {i}", fontsize=9)
        for c, colour in enumerate(("tab:red", "tab:green", "tab:blue")):
            ax = axes[i, c + 1]
            ax.bar(centres, hard[i, c].numpy(), width=L, color=colour, alpha=0.25, label="hard")
            ax.plot(centres, soft[i, c].numpy(), "-", color=colour, lw=1.5, label="soft")
            ax.set_xlim(-1, 1)
            ax.set_title(f"{'RGB'[c]}: soft mass {float(soft[i, c].sum()):.3f}", fontsize=9)
    axes[0, 1].legend(fontsize=8)
    fig.suptitle(f"K = {bins}, L = {L:.4f}, B = {B:.4f} (= {B / L:.2f} L)", fontsize=10)
    fig.tight_layout()
    return fig


def show_source(obj: object):
    """The source of a package object as a Markdown code block: the book shows code, never retypes it.

    Args:
        obj: a function, class or method defined in a Python file.

    Returns:
        an ``IPython.display.Markdown`` whose first line names the object and where it lives.
    """
    import inspect
    import textwrap
    from pathlib import Path

    from IPython.display import Markdown

    target = inspect.unwrap(obj)
    lines, start = inspect.getsourcelines(target)
    path = Path(inspect.getsourcefile(target) or "?")
    parts = path.parts
    where = "/".join(parts[len(parts) - 1 - parts[::-1].index("histgan"):]) if "histgan" in parts else path.name
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"
    code = textwrap.dedent("".join(lines)).rstrip("\n")
    header = f"**Source** `{name}` ({where}, lines {start}–{start + len(lines) - 1}):"
    return Markdown(f"{header}\n\n```python\n{code}\n```")


def saved_tensor_bytes(fn, *args, **kwargs) -> int:
    """Bytes of the tensors autograd keeps alive for the backward pass of ``fn(*args, **kwargs)``.

    Counts every tensor packed by ``torch.autograd.graph.saved_tensors_hooks`` during the call
    (deterministic, unlike a process's peak memory). At least one argument must require grad.
    """
    import torch

    sizes: list[int] = []

    def pack(t: Tensor) -> Tensor:
        sizes.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args, **kwargs)
    return int(sum(sizes))


def _rst_table(lines: list[str]) -> list[str]:
    """A reStructuredText simple table (``===`` rules) as a Markdown table."""
    rule = lines[0]
    starts = [i for i, ch in enumerate(rule) if ch == "=" and (i == 0 or rule[i - 1] == " ")]
    rows = []
    for line in lines[1:]:
        if set(line.replace(" ", "")) <= {"="}:
            continue
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None])]
        rows.append("| " + " | ".join(cells) + " |")
    return [rows[0], "|" + "---|" * len(starts), *rows[1:]] if rows else []


def docstring_markdown(text: str) -> str:
    """A docstring's reStructuredText, as far as the package's docstrings use it, in Markdown: inline
    literals and roles become code, rubrics bold, simple tables tables; everything else is kept."""
    import re

    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        if lines[i].startswith("==") and set(lines[i].replace(" ", "")) == {"="}:
            j = i + 1
            while j < len(lines) and lines[j].strip():
                j += 1
            out.extend(_rst_table(lines[i:j]))
            i = j
        else:
            out.append(lines[i])
            i += 1
    text = "\n".join(out)
    text = re.sub(r":(?:func|mod|class|data|meth|attr):`~?([^`]+)`", r"`\1`", text)
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    return re.sub(r"^\.\. rubric:: (.+)$", r"**\1**", text, flags=re.M)


def show_doc(obj: object, skip_summary: bool = True):
    """A module's, class's or function's docstring rendered as Markdown (the book shows the package's
    own words, never retypes them).

    Args:
        obj: anything with a docstring.
        skip_summary: leave out the first paragraph (the one-line summary the page's prose already says).

    Returns:
        an ``IPython.display.Markdown``.
    """
    import inspect

    from IPython.display import Markdown

    doc = inspect.getdoc(obj) or ""
    if skip_summary and "\n\n" in doc:
        doc = doc.split("\n\n", 1)[1]
    return Markdown(docstring_markdown(doc))
