"""The all-pairs protocol's metric cost: 28 × 28 = 784 pairs at 256², once the outputs exist.

    python benchmarks/bench_evaluate.py            # 784 pairs at 256², 3 repetitions (~1–2 min)
    python benchmarks/bench_evaluate.py --quick    # 8 × 8 pairs at 64²
    python benchmarks/bench_evaluate.py --main-job # what the new metrics add to the main job (below)

The target is ≤ 10 s for all 784 pairs on a 2-core CPU. The model here is the
identity (``out = x``), so only the measuring is timed:

* ``delta_e``  — eq (12) alone: L*a*b* of every output, masked means, ΔE (what Table 2 needs);
* ``evaluate`` — :func:`histgan.eval.evaluate.evaluate` without ground truth: ΔE, ΔE2000, grade,
  SSIM of lightness vs. the input, foreground IoU, per-pair rows and the summary;
* ``+gt``      — the per-batch metrics with a ground-truth tensor given as well (SSIM, PSNR, ΔE vs.
  GT); rendering the targets is the data module's cost, not counted.

Each is the median of ``--reps`` runs, with torch's default thread count and with one thread.
Results go to ``benchmarks/results/evaluate.json``.

``--main-job`` measures the shape-against-truth and realism metrics at the main job's size: a
synthetic set at 64² (16 test inputs × 16 references = 256 pairs, training folders for the realism
sets), 8 models evaluated (the main job's 4 learned variants and 4 baselines; here the 4 baselines
twice, as the metrics' cost does not depend on the model): ``realism=False`` against
``realism="auto"`` (128 images per set: SWD and C2ST, whole and foreground, for every model, and the
calibration rows once), and the two foreground SSIMs against the truth on all 256 pairs. Once each
(a realism score is deterministic; reps would only re-measure the same work). Results go to
``benchmarks/results/evaluate_main_job.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

# OpenMP's wait policy is left as the environment sets it, as in a real run. On a shared,
# oversubscribed machine run with OMP_WAIT_POLICY=passive (spinning workers that are descheduled make
# every small parallel region wait); on a quiet machine passive waiting itself made a training step
# 2.3x slower (BENCHMARKS.md), so it is not the default.

import torch  # noqa: E402

from histgan.eval import evaluate as E  # noqa: E402
from histgan.eval.results import EvalData, load_eval_data  # noqa: E402
from histgan import metrics as M  # noqa: E402
from histgan import colour_difference as CD  # noqa: E402
from histgan.io import atomic_write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _images(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random colour images in [-1, 1] with elliptical foreground masks."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g) * 2 - 1
    img = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    r = 0.4 + 0.3 * torch.rand(n, 1, 1, 1, generator=g)
    mask = ((xx / r) ** 2 + (yy / 0.9) ** 2 < 1).float()
    return img.clamp(-1, 1), mask


def _identity(x, x_mask, ref, ref_mask):
    return x


def _delta_e_only(data: EvalData, batch: int) -> None:
    fg = CD.mean_lab(data.ref, data.ref_mask)
    for i in range(len(data.x)):
        for j in range(0, len(data.ref), batch):
            n = min(batch, len(data.ref) - j)
            out = data.x[i : i + 1].expand(n, -1, -1, -1)
            CD.delta_e_lab(CD.mean_lab(out, data.x_mask[i : i + 1].expand(n, -1, -1, -1)), fg[j : j + n])


def _with_gt(data: EvalData, batch: int) -> None:
    fg, bg = M.reference_means(data.ref, data.ref_mask)
    light = CD.rgb_to_lab(data.x)[:, :1] / 100.0
    gt = (data.ref[:batch] + 1) / 2
    for i in range(len(data.x)):
        for j in range(0, len(data.ref), batch):
            n = min(batch, len(data.ref) - j)
            ii = [i] * n
            E.batch_metrics(data.x[ii], light[ii], data.x_mask[ii], fg[j : j + n], bg[j : j + n], gt[:n])


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _main_job(threads: int) -> list[dict]:
    """Seconds the new metrics add to the main job's evaluation (see the module docstring)."""
    import tempfile

    from histgan.eval.baselines import BASELINES
    from histgan.data.synthetic import write_dataset

    torch.set_num_threads(threads)
    root = write_dataset(tempfile.mkdtemp(prefix="bench-eval-"), size=64, n_train=(128, 256), n_test=(16, 16),
                         seed=0, progress=False)
    models = {f"{n}_{k}": f for k in (1, 2) for n, f in BASELINES.items()}
    rows = []
    for realism in (False, "auto"):
        data = load_eval_data(root)  # a fresh cache: the realism sets are built inside the timing
        start = time.perf_counter()
        res = [E.evaluate(f, data, progress=False, name=n, realism=realism, n_samples=0) for n, f in models.items()]
        s = time.perf_counter() - start
        rows.append({"case": f"8 models, realism={realism}", "threads": threads, "seconds": round(s, 2),
                     "realism_seconds": [r.summary.get("realism_seconds") for r in res]})
        print(f"8 models × 256 pairs at 64², realism={realism!s:5s} threads={threads}: {s:6.1f} s", flush=True)
    data = load_eval_data(root)
    ii, jj = [i for i in range(16) for _ in range(16)], list(range(16)) * 16
    gt = CD.rgb_to_lab(data.ground_truth(ii, jj), value_range=(0, 1))[:, :1] / 100.0
    out = CD.rgb_to_lab(BASELINES["baseline_reinhard"](data.x[ii], data.x_mask[ii], data.ref[jj], data.ref_mask[jj]))
    start = time.perf_counter()
    for b in range(0, 256, 16):
        light, g, m = out[b : b + 16, :1] / 100.0, gt[b : b + 16], data.x_mask[ii[b : b + 16]]
        M.foreground_ssim(light, g, m)
        M.foreground_ssim(light, g, m, M.lowpass_sigma(64))
    s = time.perf_counter() - start
    rows.append({"case": "foreground SSIM + low-pass, 256 pairs, one model", "threads": threads, "seconds": round(s, 3)})
    print(f"foreground SSIMs vs truth, 256 pairs, one model: {s:.2f} s (× 8 models: {8 * s:.1f} s)", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 × 8 pairs at 64² instead of 28 × 28 at 256²")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement (median; default 3)")
    parser.add_argument("--batch-size", type=int, default=16, help="pairs per batch (default 16)")
    parser.add_argument("--main-job", action="store_true", help="only the cost the new metrics add to the main job")
    args = parser.parse_args()
    if args.main_job:
        rows = _main_job(torch.get_num_threads())
        atomic_write_json(RESULTS / "evaluate_main_job.json", {
            "rows": rows, "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None})
        return
    n, size = (8, 64) if args.quick else (28, 256)
    x, xm = _images(n, size, 0)
    r, rm = _images(n, size, 1)
    data = EvalData(x, xm, [f"x{i}" for i in range(n)], r, rm, [f"y{i}" for i in range(n)])
    default_threads = torch.get_num_threads()
    rows = []
    for threads in sorted({default_threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        cases = {
            "delta_e": lambda: _delta_e_only(data, args.batch_size),
            "evaluate": lambda: E.evaluate(_identity, data, batch_size=args.batch_size, progress=False, n_samples=0),
            "+gt": lambda: _with_gt(data, args.batch_size),
        }
        for name, fn in cases.items():
            s = _median_time(fn, args.reps)
            rows.append({"case": name, "threads": threads, "pairs": n * n, "size": size, "seconds": round(s, 3)})
            print(f"{name:9s} threads={threads}  {n * n} pairs at {size}²: {s:6.2f} s  "
                  f"({1e3 * s / (n * n):.2f} ms/pair)", flush=True)
    torch.set_num_threads(default_threads)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    atomic_write_json(RESULTS / f"evaluate{'_quick' if args.quick else ''}.json", {
        "rows": rows, "torch": torch.__version__, "cpu_count": os.cpu_count(), "load_average": load,
        "machine": platform.machine(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")})
    print(f"load average during the run: {load}")


if __name__ == "__main__":
    main()
