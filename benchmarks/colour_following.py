"""How well a trained translator follows its reference's colour, channel by channel, and why not.

    python benchmarks/colour_following.py RUN [RUN ...] [--data data/synthetic] [--pairs 16]

For each run (a ``histgan_bi`` or ``histgan_uni`` run folder) and the first ``--pairs`` test inputs ×
references of the benchmark:

* the slope of the output's mean L*, a*, b* (over the input's mask) against the reference's (over its
  own), by least squares: 1 = the colour is followed, 0 = ignored;
* the root-mean-square error of each coordinate split by source (a two-way decomposition of the
  input × reference table): the part that depends on the reference alone, on the input alone, and
  the rest;
* a linear probe on the training references (first 300 fit, the rest held out): how much of the
  chroma that the references have apart from their lightness (a*, b* minus a cubic in L*) can be read
  linearly from the histogram that conditions the generator, and from the colour code it is
  encoded into (held-out R²).

Prints one block per run; nothing is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from histgan.colour_difference import mean_lab
from histgan.eval.results import load_eval_data
from histgan.inference import load_run


def _r2_held_out(features: np.ndarray, target: np.ndarray, n_fit: int) -> float:
    X = np.c_[features, np.ones(len(features))]
    w, *_ = np.linalg.lstsq(X[:n_fit], target[:n_fit], rcond=1e-6)
    residual = target[n_fit:] - X[n_fit:] @ w
    return float(1 - (residual ** 2).mean() / target[n_fit:].var())


def follow(run: Path, data: Path, pairs: int) -> None:
    model = load_run(run)
    test = load_eval_data(data)
    n = min(pairs, len(test.x), len(test.ref))
    lab_ref = mean_lab(test.ref[:n], test.ref_mask[:n])
    out = np.stack([mean_lab(model(test.x[i:i + 1].expand(n, -1, -1, -1), None, test.ref[:n], test.ref_mask[:n]),
                             test.x_mask[i:i + 1].expand(n, -1, -1, -1)) for i in range(n)])  # (input, ref, 3)
    error = out - lab_ref[None]
    print(f"{run}: step {model.step}, {n} × {n} test pairs, mean ΔE {np.linalg.norm(error, axis=-1).mean():.2f}")
    for c, name in enumerate(("L*", "a*", "b*")):
        slope = np.polyfit(np.tile(lab_ref[:, c], n), out[..., c].ravel(), 1)[0]
        e = error[..., c]
        by_input, by_ref = e.mean(1, keepdims=True), e.mean(0, keepdims=True)
        rest = e - by_input - by_ref + e.mean()
        rms = lambda v: float(np.sqrt((v ** 2).mean()))  # noqa: E731
        print(f"  {name}: slope {slope:.2f}; rms error {rms(e):.2f} = reference {rms(by_ref - e.mean()):.2f}, "
              f"input {rms(by_input - e.mean()):.2f}, rest {rms(rest):.2f}, bias {e.mean():+.2f}")
    train = load_eval_data(data, inputs="testA", references="trainB")
    lab = mean_lab(train.ref, train.ref_mask)
    with torch.no_grad():
        h = model.histogram(train.ref, train.ref_mask)
        code = model.G.encode(h).numpy()
    lightness = np.c_[lab[:, 0], lab[:, 0] ** 2, lab[:, 0] ** 3]
    n_fit = int(0.75 * len(lab))
    for c, name in ((1, "a*"), (2, "b*")):
        fit = np.c_[lightness, np.ones(len(lab))]
        chroma = lab[:, c] - fit @ np.linalg.lstsq(fit, lab[:, c], rcond=None)[0]
        print(f"  {name} apart from L* (std {chroma.std():.2f}): held-out R² from the histogram "
              f"{_r2_held_out(h.flatten(1).numpy(), chroma, n_fit):.2f}, from the code {_r2_held_out(code, chroma, n_fit):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of conditioned models")
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--pairs", type=int, default=16, help="test inputs × references (first N of each)")
    args = parser.parse_args()
    if not args.data.is_dir():
        parser.error(f"--data {args.data} does not exist; make it with 'python -m histgan data synth --out {args.data}'")
    for run in args.runs:
        follow(run, args.data, args.pairs)


if __name__ == "__main__":
    main()
