"""How fine the classifier two-sample test is at the evaluation's set size, and what tells outputs apart.

    python benchmarks/c2st_resolution.py [--run runs/main/variants/variant=histgan_bi] [--data data/synthetic]
                                         [--seeds 5] [--out benchmarks/results/c2st_resolution.json]

The evaluation scores each model once, with one seeded classifier (``histgan.eval.realism.c2st_accuracy``)
on the realism sets of ``histgan.eval.realism_sets`` (128 images a set on the benchmark). This script
repeats the test with ``--seeds`` classifier seeds (each seed also redraws the train/test split) and reports
the mean and standard deviation of the accuracy, whole images and foreground only, for:

* the run's outputs on the evaluated pairs, the true targets of the same pairs (a perfect translator)
  and every non-learned baseline: can the test separate a perfect translator from the best baseline?
* probes on the run's outputs, to find what the classifier reads: zero-mean Gaussian grain of two
  strengths (photographs carry sensor noise, the outputs are smooth), the outputs' foreground on the true
  targets' background, and the true targets' foreground on the outputs' background.
* the high-frequency energy (RMS of image minus its 3 × 3 mean) of outputs, true targets and real images,
  and what the grain costs the shading metric (foreground SSIM of L* against the true targets).

Prints a table and writes the numbers to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as nnf

from histgan import colour_difference as CD
from histgan import metrics as M
from histgan.eval import realism_sets as RS
from histgan.eval.baselines import BASELINES
from histgan.eval.evaluate import REALISM_SEED
from histgan.eval.realism import c2st_accuracy, c2st_null_sd, fill_background
from histgan.eval.results import load_eval_data
from histgan.inference import load_run
from histgan.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "c2st_resolution.json"


def _outputs(model, data, ii: list[int], jj: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(data.x[ii], data.x_mask[ii], data.ref[jj], data.ref_mask[jj]).float()


def _c2st(images: torch.Tensor, masks: torch.Tensor, ref: RS.RealismReference, seeds: int) -> dict[str, float]:
    whole = [c2st_accuracy(images, ref.real, seed=s) for s in range(seeds)]
    fg_real = fill_background(ref.real, ref.real_mask, RS.BACKGROUND_FILL)
    fg = [c2st_accuracy(fill_background(images, masks, RS.BACKGROUND_FILL), fg_real, seed=s) for s in range(seeds)]
    return {"whole_mean": float(np.mean(whole)), "whole_sd": float(np.std(whole, ddof=1)),
            "fg_mean": float(np.mean(fg)), "fg_sd": float(np.std(fg, ddof=1)), "whole": whole, "fg": fg}


def _high_frequency(images: torch.Tensor) -> float:
    return float((images - nnf.avg_pool2d(images, 3, 1, 1, count_include_pad=False)).pow(2).mean().sqrt())


def _ssim_fg(out: torch.Tensor, truth: torch.Tensor, masks: torch.Tensor) -> float:
    light = CD.rgb_to_lab(out)[:, :1] / 100.0
    truth_light = CD.rgb_to_lab(truth)[:, :1] / 100.0
    return float(np.nanmean(M.foreground_ssim(light, truth_light, (masks != 0).to(light.dtype))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/main/variants/variant=histgan_bi"))
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--seeds", type=int, default=5, help="classifier seeds per set (each redraws the split)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error(f"--seeds must be at least 2 (a standard deviation needs two), got {args.seeds}")
    if not (args.data / "testA").is_dir():
        parser.error(f"--data {args.data} holds no benchmark; make it with 'python -m histgan data synth --out {args.data}'")
    torch.set_num_threads(os.cpu_count() or 1)
    data = load_eval_data(args.data)
    n_in, n_ref = len(data.x), len(data.ref)
    n = RS.realism_size(data, n_in * n_ref)
    ref = RS.build_reference(data, n_in, n_ref, n, seed=REALISM_SEED)
    ii, jj = map(list, zip(*ref.pairs))
    masks = data.x_mask[ii]
    out = _outputs(load_run(args.run), data, ii, jj)
    truth = ref.sets["ground_truth"][0]
    grain = torch.Generator().manual_seed(1)
    sets = {"outputs": out, "true targets": truth,
            **{name: _outputs(fn, data, ii, jj) for name, fn in BASELINES.items()},
            "outputs + grain 0.02": (out + 0.02 * torch.randn(out.shape, generator=grain)).clamp(-1, 1),
            "outputs + grain 0.04": (out + 0.04 * torch.randn(out.shape, generator=grain)).clamp(-1, 1),
            "outputs' skin, true background": out * masks + truth * (1 - masks),
            "true skin, outputs' background": truth * masks + out * (1 - masks)}
    rows = {}
    for name, images in sets.items():
        rows[name] = {**_c2st(images, masks, ref, args.seeds), "high_frequency": _high_frequency(images),
                      "ssim_fg": _ssim_fg(images, truth, masks)}
        r = rows[name]
        print(f"{name:34s} C2ST whole {r['whole_mean']:.3f} ± {r['whole_sd']:.3f}   fg {r['fg_mean']:.3f} ± "
              f"{r['fg_sd']:.3f}   high-freq {r['high_frequency']:.4f}   SSIM fg {r['ssim_fg']:.3f}", flush=True)
    real_hf = _high_frequency(ref.real)
    print(f"{'real photographs':34s} high-freq {real_hf:.4f}; chance SD of one test at {n} images a set: "
          f"{c2st_null_sd(n):.3f}")
    atomic_write_json(args.out, {
        "date": datetime.date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores", "run": str(args.run), "data": str(args.data), "n": n, "seeds": args.seeds,
        "chance_sd": c2st_null_sd(n), "real_high_frequency": real_hf, "sets": rows})


if __name__ == "__main__":
    main()
