"""Throughput of the synthetic renderer and of folder loading, single thread.

    python benchmarks/bench_data.py [--n 200]

Prints images/s for rendering X and Y (both domains, plain and photo) at 64² and 256² (the issue
asks for >= 100 images/s at 64² on one core for plain), for ``write_dataset`` of each domain and
``ground_truth`` (what evaluation calls for every test pair), and for ``UnpairedImageFolder`` items
(two PNG decodes and two masks each) from a freshly written set. The last line is the time to write
the main job's set (800 training + 32 test images at 64²) in each domain, extrapolated from the
measured rates.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import torch  # noqa: E402

from histgan.data import sampling, synthetic  # noqa: E402
from histgan.data.folders import UnpairedImageFolder  # noqa: E402
from histgan.data.photo import render_photo  # noqa: E402
from histgan.data.render import render_x, render_y  # noqa: E402


def _rate(fn, n: int) -> float:
    fn(0)  # warm-up
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images per measurement at 64² (a quarter at 256²)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'what':<34}{'size':>6}{'images/s':>12}")
    for size, n in ((64, args.n), (256, max(args.n // 4, 1))):
        plain = [synthetic.image_params(0, "train", "B", i) for i in range(n + 1)]
        photo = [synthetic.image_params(0, "train", "B", i, "photo") for i in range(n + 1)]
        x = _rate(lambda i: render_x(plain[i][0], size), n)
        y = _rate(lambda i: render_y(plain[i][0], plain[i][1], size), n)
        p = _rate(lambda i: render_photo(photo[i][0], photo[i][1], size), n)
        print(f"{'render X (grey)':<34}{size:>6}{x:>12.0f}")
        print(f"{'render Y plain (skin, background)':<34}{size:>6}{y:>12.0f}")
        print(f"{'render Y photo':<34}{size:>6}{p:>12.0f}")
    write = {}
    for domain in sampling.DOMAINS:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            root = synthetic.write_dataset(tmp, size=64, n_train=(args.n, args.n), n_test=(4, 4), progress=False,
                                           domain=domain)
            write[domain] = (2 * args.n + 8) / (time.perf_counter() - t)
            print(f"{'write_dataset ' + domain + ' (+ 2 PNGs)':<34}{64:>6}{write[domain]:>12.0f}")
            gt = _rate(lambda i: synthetic.ground_truth(root, f"x{i % 4:04d}.png", f"y{i // 4 % 4:04d}.png"), args.n)
            print(f"{'ground_truth ' + domain:<34}{64:>6}{gt:>12.0f}")
            if domain == "plain":
                ds = UnpairedImageFolder(root, size=64)
                items = _rate(lambda i: ds[i % len(ds)], args.n)
                print(f"{'UnpairedImageFolder item (x + y)':<34}{64:>6}{items:>12.0f}")
    print("main job's set (800 + 32 images at 64²): "
          + ", ".join(f"{d} {832 / write[d]:.0f} s" for d in sampling.DOMAINS))


if __name__ == "__main__":
    main()
