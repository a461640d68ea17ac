"""The main job's train stage: its five jobs one after another versus side by side, in one process.

    python benchmarks/bench_train_stage.py [--steps 60] [--masker-steps 30] [--data data/synthetic]

Runs the jobs of :func:`histgan.train.variants.variant_jobs` (the four variants of Table 2 and the reference
masker, the ``cpu`` preset, each shortened to ``--steps``) twice into temporary folders: sequentially,
each with every core's thread (``workers=1``, what the main job did before the stage existed), and
with :func:`histgan.train.parallel.run_parallel`'s default (one job per core, one thread each, on a CPU).
The two layouts alternate in order (A B, then B A with ``--reps 2``) so that a drift of the machine's
speed does not favour one. Prints the wall time of each and their ratio; the training steps are the
same in both, only the layout differs. The data must exist (``python -m histgan data synth``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from histgan.train.parallel import default_workers, run_parallel
from histgan.train.variants import variant_jobs


def _run(data: Path, steps: int, masker_steps: int, workers: int, threads: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-train-stage-") as tmp:
        jobs = variant_jobs(Path(tmp), data, "cpu", steps=steps, masker_steps=masker_steps, progress=False)
        start = time.perf_counter()
        run_parallel(jobs, workers=workers, threads=threads, progress=False)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--steps", type=int, default=60, help="training steps per variant")
    parser.add_argument("--masker-steps", type=int, default=30)
    parser.add_argument("--reps", type=int, default=1, help="pairs of runs (the order alternates)")
    parser.add_argument("--out", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    if not (args.data / "trainA").is_dir():
        raise SystemExit(f"{args.data} holds no benchmark; run: python -m histgan data synth --out {args.data}")
    cpus = os.cpu_count() or 1
    workers = default_workers(5, cpus)
    layouts = {"sequential": (1, cpus), "side_by_side": (workers, max(1, cpus // workers))}
    times: dict[str, list[float]] = {k: [] for k in layouts}
    for rep in range(args.reps):
        for name in (list(layouts) if rep % 2 == 0 else list(reversed(layouts))):
            times[name].append(_run(args.data, args.steps, args.masker_steps, *layouts[name]))
            print(f"{name:13s} (workers, threads) = {layouts[name]}: {times[name][-1]:.1f} s", flush=True)
    seq, par = (sum(times[k]) / len(times[k]) for k in layouts)
    print(f"side by side is {seq / par:.2f}x faster than sequential ({seq:.1f} s vs {par:.1f} s; "
          f"{args.steps} steps per variant, {args.masker_steps} masker steps, {cpus} cores)")
    if args.out:
        args.out.write_text(json.dumps({"steps": args.steps, "masker_steps": args.masker_steps, "cpus": cpus,
                                        "layouts": layouts, "seconds": times, "ratio": seq / par}, indent=2))


if __name__ == "__main__":
    main()
