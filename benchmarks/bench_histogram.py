"""Soft colour histogram side by side: ``soft_histogram`` vs ``soft_histogram_reference`` vs kornia.

    python benchmarks/bench_histogram.py                  # the grid below (~20 min on 2 busy cores)
    python benchmarks/bench_histogram.py --quick          # 2 configurations, about a minute
    python benchmarks/bench_histogram.py --only 16x256x256 --max-gb 20   # the 15 GB reference, alone
    python benchmarks/bench_histogram.py --flat           # soft_histogram alone at K = 32, 64, 256, interleaved
    python benchmarks/bench_histogram.py --plot           # plots from benchmarks/results/histogram.json

Grid: batch {1, 16} × image {64², 256²} × K {32, 64, 256}, 3 channels, forward (``no_grad``) and
forward+backward (``(h * g).sum().backward()``, ``g`` fixed random). Every configuration times all
methods interleaved in this one process (medians of ``--reps`` repetitions; methods slower than 10 s
per run get 3) and measures each method's peak memory in a fresh subprocess: the resident set's
high-water mark during one call (reset through ``/proc/self/clear_refs`` after the inputs exist)
minus the resident set before it, plus the bytes autograd saves for backward
(:func:`histgan.book.show.saved_tensor_bytes`' hooks).

kornia (the ``bench`` extra: ``pip install -e ".[bench]"``) has no colour histogram; its
``kornia.enhance.histogram`` is a 1-D Gaussian KDE evaluated at bin centres on ``(rows, samples)``
data. It gets the flattened pixels ``(N·C, H·W)``, the same K centres and the Gaussian bandwidth
``B·π/√3`` (the standard deviation of our logistic-derivative kernel of scale ``B = 2/K``). It does
not compute the same numbers (a density at centres, normalised to sum 1, vs. bin integrals), only
the same amount of work per pixel and bin. Configurations whose estimated peak exceeds ``--max-gb``
are skipped and listed; run them alone later with ``--only``. Results merge into the JSON file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# OpenMP's wait policy is left as the environment sets it, as in a real run. On a shared,
# oversubscribed machine run with OMP_WAIT_POLICY=passive (spinning workers that are descheduled make
# every small parallel region wait); on a quiet machine passive waiting itself made a training step
# 2.3x slower (BENCHMARKS.md), so it is not the default.

import torch  # noqa: E402

from histgan.histogram import bin_width, default_bandwidth, soft_histogram, soft_histogram_reference  # noqa: E402
from histgan.io import atomic_path, atomic_write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("fwd", "fwd+bwd")
MIN_REP_S = 0.05  # a repetition times a loop of calls at least this long
SLOW_S = 10.0  # a method slower than this per run gets at most 3 repetitions


def kornia_histogram():
    """``kornia.enhance.histogram`` or None when kornia is not installed."""
    try:
        import kornia.enhance
    except ImportError:
        return None
    return kornia.enhance.histogram


def methods() -> list[str]:
    return ["soft", "reference"] + (["kornia"] if kornia_histogram() is not None else [])


def make_call(method: str, bins: int):
    """A function ``(N, C, H, W) -> (N, C, K)`` for ``method`` at ``bins`` bins (B = 2/K)."""
    if method == "soft":
        return lambda x: soft_histogram(x, bins)
    if method == "reference":
        return lambda x: soft_histogram_reference(x, bins)
    hist = kornia_histogram()
    centres = -1.0 + bin_width(bins) * (torch.arange(bins, dtype=torch.float32) + 0.5)
    sigma = torch.tensor(default_bandwidth(bins) * math.pi / math.sqrt(3.0))
    return lambda x: hist(x.reshape(x.shape[0] * x.shape[1], -1), centres, sigma).reshape(*x.shape[:2], bins)


def make_input(batch: int, size: int, mode: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    return x.requires_grad_(mode == "fwd+bwd")


def run_once(call, x: torch.Tensor, mode: str) -> None:
    if mode == "fwd":
        with torch.no_grad():
            call(x)
        return
    h = call(x)
    g = torch.randn(h.shape, generator=torch.Generator().manual_seed(1))
    (h * g).sum().backward()
    x.grad = None


def estimated_gb(method: str, batch: int, size: int, bins: int, mode: str) -> float:
    """Peak estimate: the broadcast methods hold ~5 (fwd+bwd) or ~3 (fwd) float32 N·C·H·W·K tensors."""
    if method == "soft":
        return 0.0
    return batch * 3 * size * size * bins * 4 * (5 if mode == "fwd+bwd" else 3) / 1e9


def time_config(batch: int, size: int, bins: int, names: list[str], reps: int) -> dict[str, list[float]]:
    """Seconds per run, ``"method mode" -> [t, ...]``, all methods interleaved in each repetition."""
    calls = {m: make_call(m, bins) for m in names}
    inputs = {mode: make_input(batch, size, mode) for mode in MODES}
    for m in names:  # warm-up on a small input: lazy initialisation is not what we measure
        for mode in MODES:
            run_once(calls[m], make_input(1, 16, mode), mode)
    times: dict[str, list[float]] = {f"{m} {mode}": [] for m in names for mode in MODES}
    # calls per repetition: a repetition lasts at least ~50 ms, so millisecond calls are timed over a
    # loop (one call of 1 ms is at the mercy of the scheduler) and slow ones once
    run = {key: (lambda m=key.split(" ")[0], mode=key.split(" ")[1]: run_once(calls[m], inputs[mode], mode))
           for key in times}
    loops = {key: calls_per_repetition(fn) for key, fn in run.items()}
    for _ in range(reps):
        for key, runs in times.items():
            if len(runs) >= 3 and min(runs) > SLOW_S:
                continue
            runs.append(timed(run[key], loops[key]))
    return times


def calls_per_repetition(fn) -> int:
    """How many calls of ``fn`` make a repetition of at least ``MIN_REP_S`` (1 for slow calls, ≤ 200)."""
    t = time.perf_counter()
    fn()
    return max(1, min(200, int(MIN_REP_S / max(time.perf_counter() - t, 1e-6))))


def timed(fn, loops: int) -> float:
    """Seconds per call of ``fn``, averaged over ``loops`` back-to-back calls."""
    t = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - t) / loops


def flatness(reps: int) -> list[dict]:
    """``soft_histogram`` alone at K = 32, 64, 256, interleaved per batch and size (the flat-in-K target)."""
    out = []
    for batch in (1, 16):
        for size in (64, 256):
            times = {(k, mode): [] for k in (32, 64, 256) for mode in MODES}
            inputs = {mode: make_input(batch, size, mode) for mode in MODES}
            run = {(k, mode): (lambda k=k, mode=mode: run_once(make_call("soft", k), inputs[mode], mode))
                   for k, mode in times}
            loops = {key: calls_per_repetition(fn) for key, fn in run.items()}
            for _ in range(reps):
                for key, runs in times.items():
                    runs.append(timed(run[key], loops[key]))
            out += [{"batch": batch, "size": size, "bins": k, "mode": mode, "median_s": statistics.median(r)}
                    for (k, mode), r in times.items()]
    return out


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(method: str, mode: str, batch: int, size: int, bins: int) -> None:
    """Subprocess entry: print ``{"peak_mb", "saved_mb"}`` of one call of ``method``."""
    call = make_call(method, bins)
    run_once(call, make_input(1, 16, mode), mode)  # warm-up: libraries and kernels loaded
    x = make_input(batch, size, mode)
    saved: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel() * t.element_size())
        return t

    before = _rss_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run_once(call, x, mode)
    peak = _rss_kb("VmHWM") - before
    print(json.dumps({"peak_mb": peak / 1024, "saved_mb": sum(saved) / 2**20}))


def measure_memory(method: str, mode: str, batch: int, size: int, bins: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", method, mode, str(batch), str(size), str(bins)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def machine() -> dict[str, object]:
    """What the numbers were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    mem_gb = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    kornia = kornia_histogram()
    return {"cpu": cpu, "cores": torch.get_num_threads(), "memory_gb": round(mem_gb, 1),
            "torch": torch.__version__, "kornia": None if kornia is None else sys.modules["kornia"].__version__,
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"), "date": time.strftime("%Y-%m-%d %H:%M")}


def bench_config(batch: int, size: int, bins: int, args: argparse.Namespace) -> list[dict]:
    """Time all methods interleaved, then each method's memory in a subprocess; one record per method and mode."""
    names = methods()
    too_big = {f"{m} {mode}": estimated_gb(m, batch, size, bins, mode) for m in names for mode in MODES}
    run = [m for m in names if max(too_big[f"{m} {mode}"] for mode in MODES) <= args.max_gb]
    times = time_config(batch, size, bins, run, args.reps)
    records = []
    for m in names:
        for mode in MODES:
            rec = {"batch": batch, "size": size, "bins": bins, "method": m, "mode": mode}
            if m not in run:
                rec["skipped"] = f"estimated {too_big[f'{m} {mode}']:.1f} GB > --max-gb {args.max_gb}"
            else:
                runs = times[f"{m} {mode}"]
                rec.update(median_s=statistics.median(runs), runs=runs)
                if not args.no_memory:
                    rec.update(measure_memory(m, mode, batch, size, bins))
            records.append(rec)
    return records


def _key(r: dict) -> tuple:
    return r["batch"], r["size"], r["bins"], r["method"], r["mode"]


def merge(path: Path, new: list[dict]) -> dict:
    """Results in ``path`` with ``new`` records replacing those of the same configuration."""
    old = json.loads(path.read_text()) if path.exists() else {"records": []}
    keep = {_key(r): r for r in old["records"]}
    keep.update({_key(r): r for r in new if "skipped" not in r or _key(r) not in keep})
    return {**old, "machine": machine(), "records": sorted(keep.values(), key=_key)}


def _num(v: float | None, width: int) -> str:
    return f"{v:{width}.1f}" if v is not None else f"{'–':>{width}}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:6.1f}×" if a is not None and b else "      –"


def table(records: list[dict]) -> str:
    """Rows per configuration and mode: times (ms), peak memory (MB) and ratios to ``soft``."""
    by = {_key(r): r for r in records}
    head = (f"{'N':>3} {'size':>5} {'K':>4} {'mode':<8}| {'soft ms':>8} {'ref ms':>9} {'ref/soft':>8} "
            f"{'kornia ms':>9} {'kor/soft':>8} | {'soft MB':>8} {'ref MB':>8} {'ref/soft':>8} {'kornia MB':>9}")
    lines = [head, "-" * len(head)]
    for n, s, k, m, mode in sorted({(*_key(r)[:3], "", r["mode"]) for r in records}):
        get = {name: by.get((n, s, k, name, mode), {}) for name in ("soft", "reference", "kornia")}
        t = {name: (r["median_s"] * 1e3 if "median_s" in r else None) for name, r in get.items()}
        mb = {name: r.get("peak_mb") for name, r in get.items()}
        fmt = _num
        lines.append(f"{n:>3} {s:>5} {k:>4} {mode:<8}| {fmt(t['soft'], 8)} {fmt(t['reference'], 9)} "
                     f"{_ratio(t['reference'], t['soft']):>8} {fmt(t['kornia'], 9)} {_ratio(t['kornia'], t['soft']):>8} | "
                     f"{fmt(mb['soft'], 8)} {fmt(mb['reference'], 8)} {_ratio(mb['reference'], mb['soft']):>8} "
                     f"{fmt(mb['kornia'], 9)}")
    return "\n".join(lines)


def targets(records: list[dict], flat_records: list[dict] | None = None) -> str:
    """The issue's targets, checked on the records that exist."""
    by = {_key(r): r for r in records}
    med = lambda n, s, k, m, mode="fwd+bwd": by.get((n, s, k, m, mode), {}).get("median_s")  # noqa: E731
    mem = lambda n, s, k, m, mode="fwd+bwd": by.get((n, s, k, m, mode), {}).get("peak_mb")  # noqa: E731
    out = []
    soft, ref = med(16, 256, 256, "soft"), med(16, 256, 256, "reference")
    if soft and ref:
        out.append(f"16×3×256², K=256, fwd+bwd: reference/soft time {ref / soft:.1f}× (target ≥ 10×)")
    if mem(16, 256, 256, "soft") and mem(16, 256, 256, "reference"):
        ratio = mem(16, 256, 256, "reference") / mem(16, 256, 256, "soft")
        out.append(f"16×3×256², K=256, fwd+bwd: reference/soft peak memory {ratio:.0f}× (target ≥ 30×)")
    pairs = [(r, by.get((*_key(r)[:3], "soft", r["mode"]))) for r in records if r["method"] == "kornia"]
    ratios = [r["median_s"] / s["median_s"] for r, s in pairs if s and "median_s" in r and "median_s" in s]
    if ratios:
        out.append(f"kornia/soft time over {len(ratios)} measurements: min {min(ratios):.1f}× (target > 1×)")
    flat = {(r["batch"], r["size"], r["bins"], r["mode"]): r["median_s"] for r in flat_records or []}
    for n, s in sorted({(r["batch"], r["size"]) for r in flat_records or []}):
        for mode in MODES:
            a, b = flat[(n, s, 256, mode)], flat[(n, s, 32, mode)]
            out.append(f"soft K=256 / K=32 (--flat, interleaved), {n}×3×{s}², {mode}: {a / b:.2f}× (target ≤ 2×)")
    return "\n".join(out)


def plot(records: list[dict], out_dir: Path) -> list[Path]:
    """Time and peak memory vs K (16×3×256²) and vs image size (batch 16, K=256), fwd+bwd, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in records if r["mode"] == "fwd+bwd" and "median_s" in r and r["batch"] == 16]
    views = {"histogram_vs_K.png": ("bins", "K (bins per channel)", lambda r: r["size"] == 256),
             "histogram_vs_size.png": ("size", "image side (pixels), batch 16", lambda r: r["bins"] == 256)}
    paths = []
    for name, (axis, label, keep) in views.items():
        fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(9, 3.6))
        for method in ("soft", "reference", "kornia"):
            rows = sorted((r for r in done if r["method"] == method and keep(r)), key=lambda r: r[axis])
            if rows:
                xs = [r[axis] for r in rows]
                ax_t.plot(xs, [r["median_s"] for r in rows], "o-", label=method)
                ax_m.plot(xs, [max(r.get("peak_mb", 0.0), 1.0) for r in rows], "o-", label=method)
        ticks = sorted({r[axis] for r in done if keep(r)})
        for ax, ylabel in ((ax_t, "seconds (median), fwd+bwd"), (ax_m, "peak memory (MB)")):
            ax.set(xscale="log", yscale="log", xlabel=label, ylabel=ylabel)
            ax.set_xticks(ticks, [str(t) for t in ticks], minor=False)
            ax.set_xticks([], minor=True)
            ax.grid(True, which="both", alpha=0.3)
        ax_t.legend()
        fig.tight_layout()
        with atomic_path(out_dir / name) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        plt.close(fig)
        paths.append(out_dir / name)
    return paths


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="only 1×3×64² K=32 and 16×3×256² K=32")
    p.add_argument("--only", nargs="*", default=None, metavar="NxSxK", help="configurations, e.g. 16x256x256")
    p.add_argument("--reps", type=int, default=5, help="repetitions per method (median reported)")
    p.add_argument("--max-gb", type=float, default=8.0, help="skip methods whose estimated peak exceeds this")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--plot", action="store_true", help="only redraw the plots from the saved results")
    p.add_argument("--flat", action="store_true", help="only soft_histogram at K = 32, 64, 256, interleaved")
    p.add_argument("--out", type=Path, default=RESULTS / "histogram.json", help="results file (merged)")
    p.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def configs(args: argparse.Namespace) -> list[tuple[int, int, int]]:
    if args.only:
        return [tuple(int(v) for v in c.lower().split("x")) for c in args.only]  # type: ignore[misc]
    if args.quick:
        return [(1, 64, 32), (16, 256, 32)]
    return [(n, s, k) for n in (1, 16) for s in (64, 256) for k in (32, 64, 256)]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        m, mode, n, s, k = args.child
        return child(m, mode, int(n), int(s), int(k))
    if args.flat:
        saved = json.loads(args.out.read_text()) if args.out.exists() else {"records": []}
        atomic_write_json(args.out, {**saved, "flatness": flatness(max(args.reps, 9))})
    elif not args.plot:
        print(f"machine: {machine()}\nmethods: {methods()}", flush=True)
        records = []
        for n, s, k in configs(args):
            records += bench_config(n, s, k, args)
            print(f"done {n}×3×{s}², K={k}", flush=True)
        atomic_write_json(args.out, merge(args.out, records))
    saved = json.loads(args.out.read_text())
    results = saved["records"]
    print(table(results))
    print(targets(results, saved.get("flatness")))
    for path in plot(results, args.out.parent):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
