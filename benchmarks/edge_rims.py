"""Rims along the silhouette: the edge excess of each model's outputs over every test pair.

    python benchmarks/edge_rims.py [--data data/synthetic] [--runs NAME=RUN_DIR ...] [--width 2]

For each trained run (``NAME=RUN_DIR``, translated as the evaluation page does) and each non-learned
baseline, every test input with every test reference: :func:`histgan.metrics.edge_excess`, the mean per-pixel
ΔE against the true target over the input's inner edge band (``--width`` pixels) minus the same over the
deeper interior. Bright or coloured rims along the limbs raise it; the true targets score 0. Prints a table
and merges one row per name into ``benchmarks/results/edge_rims.json`` with the date and the machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

import numpy as np
import torch

from histgan import colour_difference as CD
from histgan.eval import baselines
from histgan.eval.results import load_eval_data
from histgan.inference import load_run
from histgan.io import atomic_write_json
from histgan.metrics import edge_excess

RESULTS = Path(__file__).parent / "results" / "edge_rims.json"


def excess(model, data, width: int) -> np.ndarray:
    """Edge excess of ``model(x, x_mask, ref, ref_mask)`` over all pairs, one input's row of pairs at a time."""
    rows = []
    n_ref = len(data.ref)
    for i in range(len(data.x)):
        ii, jj = [i] * n_ref, list(range(n_ref))
        with torch.no_grad():
            out = model(data.x[ii], data.x_mask[ii], data.ref, data.ref_mask)
        gt = data.ground_truth(ii, jj)
        rows.append(edge_excess(CD.rgb_to_lab(out), CD.rgb_to_lab(gt, value_range=(0, 1)), data.x_mask[ii], width))
    return np.concatenate(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--runs", nargs="*", default=[], metavar="NAME=RUN_DIR")
    parser.add_argument("--width", type=int, default=2)
    parser.add_argument("--no-baselines", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_eval_data(args.data)
    models = {name: load_run(path, device="cpu") for name, path in (r.split("=", 1) for r in args.runs)}
    if not args.no_baselines:
        models.update(baselines.BASELINES)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"rows": {}}
    for name, model in models.items():
        e = excess(model, data, args.width)
        results["rows"][name] = {"edge_excess_mean": float(np.nanmean(e)), "edge_excess_median": float(np.nanmedian(e)),
                                 "pairs": int(np.isfinite(e).sum()), "width": args.width}
        print(f"{name:28s} edge excess {np.nanmean(e):6.2f} (median {np.nanmedian(e):5.2f}) over {np.isfinite(e).sum()} pairs")
    results["date"] = datetime.date.today().isoformat()
    results["machine"] = f"{platform.machine()}, {platform.processor() or platform.system()}"
    atomic_write_json(RESULTS, results)


if __name__ == "__main__":
    main()
