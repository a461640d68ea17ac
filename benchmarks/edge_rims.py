"""Rims along the silhouette: the edge excess of each model's outputs over every test pair.

    python benchmarks/edge_rims.py [--data data/synthetic] [--runs NAME=RUN_DIR ...] [--no-baselines]

For each trained run (``NAME=RUN_DIR``) and each non-learned baseline, every test input with every test
reference, evaluated as the evaluation page does (:func:`histgan.eval.evaluate.evaluate`, realism left out):
its ``edge_excess`` column (:func:`histgan.metrics.edge_excess`): the mean per-pixel ΔE against the true
target over the input mask's inner edge band (2 pixels) minus the same over the deeper interior. Bright or
coloured rims along the limbs raise it; the true targets score 0. Prints a table
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

from histgan.eval import baselines
from histgan.eval.evaluate import evaluate
from histgan.eval.results import load_eval_data
from histgan.io import atomic_write_json

RESULTS = Path(__file__).parent / "results" / "edge_rims.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--runs", nargs="*", default=[], metavar="NAME=RUN_DIR")
    parser.add_argument("--no-baselines", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_eval_data(args.data)
    models = dict(r.split("=", 1) for r in args.runs)  # run directories, loaded by evaluate
    if not args.no_baselines:
        models.update(baselines.BASELINES)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"rows": {}}
    for name, model in models.items():
        e = np.array([r["edge_excess"] for r in evaluate(model, data, realism=False, progress=False, name=name).pairs])
        results["rows"][name] = {"edge_excess_mean": float(np.nanmean(e)), "edge_excess_median": float(np.nanmedian(e)),
                                 "pairs": int(np.isfinite(e).sum()), "width": 2}
        print(f"{name:28s} edge excess {np.nanmean(e):6.2f} (median {np.nanmedian(e):5.2f}) over {np.isfinite(e).sum()} pairs")
    results["date"] = datetime.date.today().isoformat()
    results["machine"] = f"{platform.machine()}, {platform.processor() or platform.system()}"
    atomic_write_json(RESULTS, results)


if __name__ == "__main__":
    main()
