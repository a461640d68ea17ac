"""A sweep of four quick-preset points: ``sweep --jobs 1`` against ``sweep --jobs 2``, end to end.

    python benchmarks/bench_sweep.py [--reps 2] [--steps 12] [--out benchmarks/results/sweep.json]

Runs ``python -m histgan sweep`` (each point a papermill execution of the training notebook, then the
collected evaluation) on one quick-preset data set written first, four points
(``lambda_hist=0,1,2,10``), twice per repetition into fresh temporary folders: one point after the other
with every core's threads (``--jobs 1``), and with one job per core, one thread each (``--jobs 2`` on
two cores: ``--jobs`` = the cores, ``--threads`` = 1). The order alternates between repetitions so that
a drift of the machine's speed does not favour one. Prints each wall time (the whole command: process
and kernel starts, training, evaluation, collection) and the ratio of the medians. The training steps
are the same in both; only the layout differs. First it measures what the machine itself allows: a
pure-Python loop run by one process alone and by one process per core at once (a virtual machine's
cores may share a physical core, or a busy host), so that the sweep's ratio can be read against that
ceiling.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from histgan.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "sweep.json"
GRID = "lambda_hist=0,1,2,10"


def _sweep(data: Path, jobs: int, threads: int, steps: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        cmd = [sys.executable, "-m", "histgan", "sweep", "--name", "bench", "--grid", GRID, "--preset", "quick",
               "--steps", str(steps), "--data", str(data), "--out", tmp, "--device", "cpu", "--jobs", str(jobs),
               "--threads", str(threads), "--no-progress"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        rows = json.loads((Path(tmp) / "bench" / "sweep.json").read_text(encoding="utf-8"))
        if len(rows) != 4:
            raise SystemExit(f"the sweep collected {len(rows)} rows, expected 4")
        return seconds


_SPIN = "s = 0\nfor i in range(15_000_000):\n    s += i * i\n"  # one thread of pure Python, no memory traffic


def _parallel_ceiling(processes: int, reps: int) -> dict[str, float]:
    """What this machine gives ``processes`` single-threaded processes at once: the throughput of a pure-Python
    loop run by that many processes side by side against one alone (``processes`` = perfect scaling). Alone
    and side by side alternate; medians of ``reps``."""
    def run(n: int) -> float:
        start = time.perf_counter()
        children = [subprocess.Popen([sys.executable, "-c", _SPIN]) for _ in range(n)]
        for child in children:
            child.wait()
        return time.perf_counter() - start

    alone, together = [], []
    for _ in range(reps):
        alone.append(run(1))
        together.append(run(processes))
    a, t = statistics.median(alone), statistics.median(together)
    return {"alone_s": a, "together_s": t, "ceiling": processes * a / t}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2, help="pairs of sweeps (the order alternates)")
    parser.add_argument("--steps", type=int, default=12, help="training steps per point (the quick preset's: 12)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    layouts = {"jobs_1": (1, cpus), f"jobs_{cpus}": (cpus, 1)}
    ceiling = _parallel_ceiling(cpus, reps=3)
    print(f"this machine: {cpus} single-threaded processes at once run a pure-Python loop at {ceiling['ceiling']:.2f}x "
          f"the throughput of one ({ceiling['alone_s']:.2f} s alone, {ceiling['together_s']:.2f} s for {cpus} at once): "
          f"the most --jobs {cpus} could gain", flush=True)
    times: dict[str, list[float]] = {k: [] for k in layouts}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-data-") as tmp:
        data = Path(tmp) / "data"
        subprocess.run([sys.executable, "-m", "histgan", "data", "synth", "--out", str(data), "--preset", "quick",
                        "--no-progress"], check=True, stdout=subprocess.DEVNULL)
        for rep in range(args.reps):
            for name in (list(layouts) if rep % 2 == 0 else list(reversed(layouts))):
                jobs, threads = layouts[name]
                times[name].append(_sweep(data, jobs, threads, args.steps))
                print(f"{name} (--jobs {jobs} --threads {threads}): {times[name][-1]:.1f} s", flush=True)
    one, many = (statistics.median(times[k]) for k in layouts)
    print(f"--jobs {cpus} is {one / many:.2f}x faster than --jobs 1 (medians {one:.1f} s and {many:.1f} s)")
    atomic_write_json(args.out, {"date": datetime.date.today().isoformat(),
                                 "machine": f"{platform.processor() or platform.machine()}, {cpus} cores",
                                 "grid": GRID, "preset": "quick", "steps": args.steps, "layouts": layouts,
                                 "seconds": times, "ratio": one / many, "parallel_ceiling": ceiling})


if __name__ == "__main__":
    main()
