"""Training speed on one CUDA GPU: fp32 vs bf16 autocast vs torch.compile, end-to-end fit, parallel sweep.

    python benchmarks/bench_gpu.py            # on a CUDA machine: < 6 min on one H200
    python benchmarks/bench_gpu.py --smoke    # every section, tiny sizes, on any device (a test of this script)

Sections (each in its own ``try``: an error is recorded and the next section runs; each has its own
time cap, after which it stops and records ``"timeout"``):

* ``data``: the synthetic benchmark at 256² (paper size) and 64² in a temporary folder (no downloads).
* ``step_fp32``, ``step_bf16``, ``step_compile``: the ``paper`` preset's ``histgan_bi`` step
  (:func:`histgan.train.step.train_step_lazy`, the sync-free step :func:`histgan.train.loop.fit` runs) on one
  batch resident on the GPU: steps/s over ``--steps`` steps after a warm-up, synchronised at both
  ends only. ``step_compile`` is bf16 autocast with every network wrapped in ``torch.compile``.
* ``fit``: :func:`histgan.train.loop.fit` end to end (loader workers, logging, checkpoint) of the
  ``paper`` preset, steps/s between two log lines after the warm-up.
* ``sweep_jobs1``, ``sweep_jobs2``: four variants of the ``cpu`` preset (64²) through
  :func:`histgan.train.parallel.run_parallel`, one at a time vs two processes sharing the GPU; wall time.

Prints a JSON summary and writes it to ``$OUT/bench_gpu.json`` when ``OUT`` is set.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from histgan.config import VARIANTS, make_config  # noqa: E402
from histgan.networks.generator import build_models  # noqa: E402
from histgan.train.parallel import Job, run_parallel  # noqa: E402
from histgan.train.runtime import autocast_dtype  # noqa: E402
from histgan.train.step import ImagePool, make_optimisers, train_step_lazy  # noqa: E402
from histgan.train.variants import train_run  # noqa: E402


class SectionTimeout(Exception):
    """A section ran past its cap."""


@contextlib.contextmanager
def cap(seconds: int):
    """Raise :class:`SectionTimeout` in this (main) thread after ``seconds``."""
    def stop(*_):
        raise SectionTimeout(f"over its {seconds} s cap")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_section(results: dict, name: str, seconds: int, fn, *args) -> None:
    """``results[name] = fn(*args)``, or the error / timeout, with the section's wall time."""
    t0 = time.perf_counter()
    try:
        with cap(seconds):
            out = fn(*args)
        results[name] = {"ok": True, **out}
    except SectionTimeout as exc:
        results[name] = {"ok": False, "error": f"timeout: {exc}"}
    except Exception as exc:  # noqa: BLE001  (record and go on: one failed section must not hide the others)
        results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                         "trace": traceback.format_exc()[-2000:]}
    results[name]["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"[bench_gpu] {name}: {json.dumps(results[name])[:400]}", file=sys.stderr, flush=True)


def make_data(root: Path, smoke: bool) -> dict:
    from histgan.data.synthetic import write_dataset

    big = 32 if smoke else 256
    paper = write_dataset(root / "paper", size=big, n_train=4 if smoke else 8, n_test=2, progress=False)
    small = write_dataset(root / "small", size=32 if smoke else 64, n_train=6 if smoke else 16, n_test=2,
                          progress=False)
    return {"paper": str(paper), "small": str(small), "paper_size": big}


def step_rate(device: torch.device, mode: str, steps: int, warmup: int, smoke: bool) -> dict:
    """Steps/s of the paper preset's histgan_bi step under ``mode``: fp32, bf16 or compile (bf16 + compile)."""
    overrides = dict(image_size=32, ngf=8, ndf=8, n_blocks=1, code_dim=8) if smoke else {}
    c = make_config("paper", variant="histgan_bi", amp=mode != "fp32", **overrides)
    torch.manual_seed(0)
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    models = {k: m.to(device).to(memory_format=fmt) for k, m in build_models(c).items()}
    optimisers = make_optimisers(models, c)
    if mode == "compile":
        models = {k: torch.compile(m) for k, m in models.items()}
    pools = {"x": ImagePool(c.pool_size), "y": ImagePool(c.pool_size)}
    g = torch.Generator().manual_seed(0)
    size = c.image_size
    disc = torch.ones(c.batch_size, 1, size, size)
    batch = {k: v.to(device).contiguous(memory_format=fmt) for k, v in {
        "x": torch.rand(c.batch_size, 3, size, size, generator=g) * 2 - 1,
        "y": torch.rand(c.batch_size, 3, size, size, generator=g) * 2 - 1, "x_mask": disc, "y_mask": disc}.items()}
    amp = None if mode == "fp32" else (autocast_dtype("auto", device) or torch.bfloat16)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    t0 = time.perf_counter()
    for _ in range(warmup):
        train_step_lazy(models, optimisers, batch, c, pools, amp)
    sync()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        losses = train_step_lazy(models, optimisers, batch, c, pools, amp)
    sync()
    seconds = time.perf_counter() - t0
    return {"steps_per_s": round(steps / seconds, 2), "ms_per_step": round(1000 * seconds / steps, 2),
            "warmup_s": round(warm, 1), "steps": steps, "amp": str(amp), "image_size": size,
            "loss_G": float(losses["loss_G"]),
            "max_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None}


def fit_rate(data: str, out: Path, steps: int, smoke: bool) -> dict:
    overrides = dict(image_size=32, ngf=8, ndf=8, n_blocks=1, code_dim=8) if smoke else {}
    log_every = max(1, steps // 4)
    run = train_run(str(out / "fit"), "paper", variant="histgan_bi", data=data, steps=steps, log_every=log_every,
                    sample_every=0, checkpoint_every=steps, **overrides)
    lines = [json.loads(s) for s in (run / "losses.jsonl").read_text().splitlines()]
    env = json.loads((run / "environment.json").read_text())
    t = [(r["step"], r["sec_per_step"] * r["step"]) for r in lines]
    (s1, t1), (s2, t2) = t[1], t[-1]  # after the first log interval (warm-up: cudnn autotuning)
    return {"steps_per_s": round((s2 - s1) / (t2 - t1), 2), "steps": steps, "from_step": s1,
            "device": env["device"], "first_interval_s": round(t[0][1], 1)}


def sweep_time(data: str, out: Path, workers: int, steps: int, device: str, smoke: bool) -> dict:
    preset = "quick" if smoke else "cpu"
    jobs = [Job(v, out / v, train_run, {"run_dir": str(out / v), "preset": preset, "variant": v, "data": data,
                                        "steps": steps, "log_every": steps, "sample_every": 0, "device": device})
            for v in VARIANTS]
    t0 = time.perf_counter()
    run_parallel(jobs, workers=workers, progress=False)
    return {"wall_s": round(time.perf_counter() - t0, 1), "runs": len(jobs), "steps_per_run": steps,
            "workers": workers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device: checks this script")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per step section (default 100)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.smoke:
        print("bench_gpu: no CUDA GPU visible to this torch; run it on a GPU machine "
              "(or with --smoke to test the script on this one)", file=sys.stderr)
        return 1
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    smoke = args.smoke
    steps, warmup = args.steps or (3 if smoke else 100), 2 if smoke else 15
    results: dict = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
                     "smoke": smoke, "cpus": os.cpu_count()}
    if device.type == "cuda":
        results.update(gpu=torch.cuda.get_device_name(device),
                       capability=".".join(map(str, torch.cuda.get_device_capability(device))))
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        root = Path(tmp)
        run_section(results, "data", 60, make_data, root / "data", smoke)
        for mode, seconds in (("fp32", 40), ("bf16", 40), ("compile", 90)):
            run_section(results, f"step_{mode}", seconds, step_rate, device, mode, steps, warmup, smoke)
        if results["data"]["ok"]:
            run_section(results, "fit", 45, fit_rate, results["data"]["paper"], root, 8 if smoke else 160, smoke)
            sweep_steps = 4 if smoke else 150
            for workers in (1, 2):
                run_section(results, f"sweep_jobs{workers}", 75, sweep_time, results["data"]["small"],
                            root / f"sweep{workers}", workers, sweep_steps, device.type, smoke)
    for a, b in (("step_bf16", "step_fp32"), ("step_compile", "step_fp32"), ("step_compile", "step_bf16")):
        if results.get(a, {}).get("ok") and results.get(b, {}).get("ok"):
            results[f"speedup_{a[5:]}_vs_{b[5:]}"] = round(results[a]["steps_per_s"] / results[b]["steps_per_s"], 2)
    if results.get("sweep_jobs1", {}).get("ok") and results.get("sweep_jobs2", {}).get("ok"):
        results["speedup_sweep_jobs2_vs_jobs1"] = round(results["sweep_jobs1"]["wall_s"] / results["sweep_jobs2"]["wall_s"], 2)
    results["total_s"] = round(time.perf_counter() - t_all, 1)
    text = json.dumps(results, indent=1)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "bench_gpu.json").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
