"""One training step side by side: the cost of the colour constraint and the ``cpu`` preset's fast paths.

    python benchmarks/bench_train_step.py variants            # 4 variants at 64² and 256² (~5 min)
    python benchmarks/bench_train_step.py constraint          # histgan_bi vs cyclegan_sn, with/without injection conv
    python benchmarks/bench_train_step.py adam                # the optimiser steps: fused Adam vs one parameter at a time
    python benchmarks/bench_train_step.py options             # cpu preset: bf16, threads, compile, batch
    python benchmarks/bench_train_step.py colour --steps 300  # bf16 vs fp32 colour results (trains twice)
    python benchmarks/bench_train_step.py batch --steps 1000  # batch 1 vs 4 for equal wall time (trains twice)
    python benchmarks/bench_train_step.py variants options --quick

``variants``: one :func:`histgan.train.step.train_step` (G/F then D_x/D_y, Adam, image pool) of each
variant at the ``cpu`` preset's network and size, and the same network at 256², interleaved in one
process (median of ``--reps``), with the fast path (the default) and with ``fast=False`` (one
network call per loss term, spectral norm recomputed on every call); ratios to plain ``cyclegan``
in the same mode and to ``cyclegan_sn`` (the colour constraint alone: histogram encoders, code
injection and eq 6, on top of spectral norm), and each fast step against its ``fast=False`` twin.

``options``: images/s of the ``cpu`` preset's ``histgan_bi`` step under each option, interleaved
(each option owns its models, all from the same seed), as a ratio to the first row: the fp32 eager
step with the default threads and one call per term (``fast=False``). The batch is synthetic (random images, disc masks): timing does not depend on it.

``colour``: trains ``histgan_bi`` on the synthetic ``cpu`` data set twice from the same seed, fp32
and bf16 autocast (the histogram and the losses stay float32 in both), evaluates ΔE on the test
pairs, and also runs the fp32 model's inference under bf16 autocast.

``batch``: the ``cpu`` preset's ``histgan_bi`` at batch 1 and 4 for the same wall-clock budget
(``--steps`` at batch 1; batch 4 gets as many steps as fit in the same time, timed side by side
first), each evaluated (mean ΔE over the test pairs): is more images per second worth fewer updates?

Results go to ``benchmarks/results/train_step.json`` (merged by section).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

# OpenMP's wait policy is left as the environment sets it, as in a real run. On a shared,
# oversubscribed machine run with OMP_WAIT_POLICY=passive (spinning workers that are descheduled make
# every small parallel region wait); on a quiet machine passive waiting itself made a training step
# 2.3x slower (BENCHMARKS.md), so it is not the default.

import torch  # noqa: E402

from histgan.config import VARIANTS, make_config  # noqa: E402
from histgan.io import atomic_write_json  # noqa: E402
from histgan.networks.generator import build_models  # noqa: E402
from histgan.train.step import ImagePool, make_optimisers, train_step  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "train_step.json"


def synthetic_batch(batch: int, size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random images in [-1, 1] with a centred disc as the foreground mask of both domains."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (0.35 * size) ** 2).float().expand(batch, 1, size, size)
    return {"x": torch.rand(batch, 3, size, size, generator=g) * 2 - 1, "y": torch.rand(batch, 3, size, size, generator=g) * 2 - 1,
            "x_mask": disc.clone(), "y_mask": disc.clone()}


class Trainer:
    """Models, optimisers, pools and a batch for one configuration; ``step()`` runs one ``train_step``."""

    def __init__(self, config, amp: bool = False, threads: int | None = None, compile: bool = False,
                 fast: bool = True) -> None:
        torch.manual_seed(config.seed)
        self.fast = fast
        self.config, self.threads = config, threads or torch.get_num_threads()
        self.models = build_models(config)
        self.optimisers = make_optimisers(self.models, config)
        self.pools = {"x": ImagePool(config.pool_size), "y": ImagePool(config.pool_size)}
        self.batch = synthetic_batch(config.batch_size, config.image_size)
        self.amp_dtype = torch.bfloat16 if amp else None
        self.compile_s = None
        if compile:
            self.models = {k: torch.compile(m) for k, m in self.models.items()}

    def step(self) -> tuple[float, float]:
        """Wall and CPU seconds (all threads) of one step; the thread count is set for it and restored."""
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            t, c = time.perf_counter(), time.process_time()
            train_step(self.models, self.optimisers, self.batch, self.config, self.pools, self.amp_dtype,
                       fast=self.fast)
            return time.perf_counter() - t, time.process_time() - c
        finally:
            torch.set_num_threads(before)


def interleaved(trainers: dict[str, Trainer], reps: int, warmup: int = 2) -> dict[str, list[tuple[float, float]]]:
    """Per name: (wall, CPU) seconds of ``reps`` steps, one step of every trainer per repetition."""
    first: dict[str, float] = {}
    for name, tr in list(trainers.items()):
        try:
            first[name] = sum(tr.step()[0] for _ in range(warmup))  # includes compilation, if any
        except Exception as exc:  # torch.compile can fail on a platform: report it, keep the others
            print(f"{name}: failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}), skipped")
            del trainers[name]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in trainers}
    for _ in range(reps):
        for name, tr in trainers.items():
            times[name].append(tr.step())
    for name, tr in trainers.items():
        tr.compile_s = first[name]
    return times


def _summary(times: dict[str, list[tuple[float, float]]], base: str, images: dict[str, int]) -> list[dict]:
    """Medians of wall and CPU seconds, images/s and ratios to ``base`` (time) or from it (throughput)."""
    med = {name: [statistics.median(t[i] for t in runs) for i in (0, 1)] for name, runs in times.items()}
    rows = []
    for name, runs in times.items():
        (w, c), (bw, bc) = med[name], med[base]
        rows.append({"name": name, "median_s": w, "median_cpu_s": c, "runs": runs, "images_per_s": images[name] / w,
                     "time_ratio": w / bw, "cpu_ratio": c / bc,
                     "throughput_ratio": (images[name] / w) / (images[base] / bw),
                     "cpu_throughput_ratio": (images[name] / c) / (images[base] / bc)})
    return rows


def bench_variants(size: int, reps: int) -> list[dict]:
    """One step of each variant at the cpu preset's network and ``size``, with ``train_step``'s fast
    path and with one call per term (``fast=False``); ratios to ``cyclegan`` in the same mode."""
    trainers = {f"{v}{'' if fast else ' (fast=False)'}": Trainer(make_config("cpu", variant=v, image_size=size), fast=fast)
                for fast in (True, False) for v in VARIANTS}
    # the preset's histgan_bi reads the code by FiLM alone; with the middle layer's injection conv too:
    trainers["histgan_bi, + injection conv"] = Trainer(make_config("cpu", variant="histgan_bi", image_size=size,
                                                                   injection="concat+film"))
    times = interleaved(trainers, reps)
    rows = []
    for suffix in ("", " (fast=False)"):
        mode = {name: t for name, t in times.items() if name.endswith(suffix) and (suffix or "fast=False" not in name)}
        part = _summary(mode, f"cyclegan{suffix}", {v: 1 for v in mode})
        sn = next(r for r in part if r["name"] == f"cyclegan_sn{suffix}")
        for r in part:
            r.update(size=size, fast=not suffix, ratio_to_cyclegan_sn=r["median_s"] / sn["median_s"],
                     cpu_ratio_to_cyclegan_sn=r["median_cpu_s"] / sn["median_cpu_s"])
        rows += part
    ref = {r["name"]: r for r in rows}
    for r in rows:  # each variant's fast step against its own one-call-per-term step
        slow = ref.get(f"{r['name']} (fast=False)")
        r["speedup_over_fast_false"] = slow["median_s"] / r["median_s"] if slow else None
    return rows


def _tiled_injection(G) -> None:
    """Make ``G`` inject its code the way it did before: a tiled ``(N, D, h, w)`` map, concatenated."""
    def inject(f, code):
        tiled = code[:, :, None, None].expand(-1, -1, f.shape[2], f.shape[3]).to(f.dtype)
        return G.inject[0](torch.cat([f, tiled], dim=1))

    G._inject_conv = inject


def bench_constraint(size: int, reps: int) -> list[dict]:
    """The colour constraint alone: ``histgan_bi`` against ``cyclegan_sn`` (same networks but for the
    histogram encoders, the code's FiLMs and eq 6): the preset's (FiLM alone), and with the middle layer's
    injection conv too (``concat+film``, the presets' choice until 2026-12-02) computed as a bias map and
    as the tiled concatenation it replaced."""
    trainers = {v: Trainer(make_config("cpu", variant=v, image_size=size)) for v in ("cyclegan_sn", "histgan_bi")}
    for name in ("histgan_bi, + injection conv (bias map)", "histgan_bi, + injection conv (tiled concat)"):
        trainers[name] = Trainer(make_config("cpu", variant="histgan_bi", image_size=size, injection="concat+film"))
    for k in ("G", "F"):
        _tiled_injection(trainers["histgan_bi, + injection conv (tiled concat)"].models[k])
    rows = _summary(interleaved(trainers, reps), "cyclegan_sn", {v: 1 for v in trainers})
    for r in rows:
        r["size"] = size
    return rows


def bench_adam(reps: int) -> list[dict]:
    """Both optimiser steps of a training step (``G`` + ``F``, ``D_x`` + ``D_y``) of the ``cpu`` preset's
    ``cyclegan_sn`` and ``histgan_bi``, as :func:`histgan.train.step.make_optimisers` builds them (torch's
    fused Adam) and as torch builds Adam on CPU without being asked (one parameter at a time), interleaved,
    on random gradients; ratios to the fused step of the same variant."""
    trials: dict[str, tuple[list[torch.optim.Optimizer], list[torch.nn.Parameter]]] = {}
    for variant in ("cyclegan_sn", "histgan_bi"):
        config = make_config("cpu", variant=variant)
        torch.manual_seed(config.seed)
        models = build_models(config)
        params = [p for m in models.values() for p in m.parameters()]
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3
        fused = list(make_optimisers(models, config).values())
        plain = [torch.optim.Adam([{k: v for k, v in g.items() if k != "fused"} | {"foreach": False}
                                   for g in o.param_groups], fused=False) for o in fused]
        trials[f"{variant} (fused, ours)"], trials[f"{variant} (one parameter at a time)"] = (fused, params), (plain, params)
    times: dict[str, list[float]] = {k: [] for k in trials}
    for rep in range(reps + 2):
        for name, (opts, _) in trials.items():
            t = time.perf_counter()
            for o in opts:
                o.step()
            if rep >= 2:  # two warm-up rounds
                times[name].append(time.perf_counter() - t)
    rows = []
    for name, runs in times.items():
        base = statistics.median(times[name.split(" (")[0] + " (fused, ours)"])
        rows.append({"name": name, "median_s": statistics.median(runs), "runs": runs,
                     "parameters": len(trials[name][1]), "time_ratio": statistics.median(runs) / base})
    return rows


def option_trainers(quick: bool, compile: bool = True) -> dict[str, Trainer]:
    """The cpu preset's ``histgan_bi`` under each option (name -> trainer)."""
    cfg = make_config("cpu", variant="histgan_bi")
    n = torch.get_num_threads()
    opts = {f"fp32 eager, {n} threads, fast=False": Trainer(cfg, fast=False),
            f"fp32 eager, {n} threads": Trainer(cfg),
            "bf16 autocast": Trainer(cfg, amp=True),
            "fp32, 1 thread": Trainer(cfg, threads=1),
            # oneDNN's bf16 convolution backward is 4-6x slower with 2 threads than with 1 (measured)
            "bf16, 1 thread": Trainer(cfg, amp=True, threads=1),
            "fp32, batch 4": Trainer(cfg.replace(batch_size=4)),
            "bf16, 1 thread, batch 4": Trainer(cfg.replace(batch_size=4), amp=True, threads=1)}
    if not quick:
        opts["fp32, 1 thread, batch 4"] = Trainer(cfg.replace(batch_size=4), threads=1)
    if not quick and compile:
        opts["torch.compile fp32"] = Trainer(cfg, compile=True)
        opts["torch.compile bf16, 1 thread"] = Trainer(cfg, amp=True, threads=1, compile=True)
    return opts


def bench_options(reps: int, quick: bool, compile: bool = True) -> list[dict]:
    trainers = option_trainers(quick, compile)
    base = next(iter(trainers))
    images = {name: tr.config.batch_size for name, tr in trainers.items()}
    times = interleaved(trainers, reps)
    rows = _summary(times, base, images)
    for r in rows:
        r["warmup_s"] = trainers[r["name"]].compile_s
    return rows


def _train_and_evaluate(name: str, amp: bool, steps: int, root: Path, work: Path,
                        batch_size: int = 1) -> tuple[dict, object]:
    from histgan.eval.evaluate import evaluate
    from histgan.train.loop import fit

    run = work / f"run_{name}"
    cfg = make_config("cpu", variant="histgan_bi", steps=steps, amp=amp, data=str(root), run_dir=str(run),
                      sample_every=0, checkpoint_every=steps, batch_size=batch_size)
    t = time.perf_counter()
    fit(cfg, resume=(run / "checkpoints" / "latest.pt").exists(), progress=False)
    train_s = time.perf_counter() - t
    log = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines() if line.strip()]
    res = evaluate(str(run), root, pairs="all", progress=False, name=name)
    return {"train_s": train_s, "sec_per_step": log[-1]["sec_per_step"], "hist_y_last": log[-1]["hist_y"],
            "delta_e_mean": res.summary["delta_e_mean"], "delta_e_std": res.summary["delta_e_std"],
            "ssim_mean": res.summary.get("ssim_mean"), "n_pairs": res.summary["n_pairs"]}, res


def bench_colour(steps: int, work: Path) -> dict:
    """fp32 vs bf16 training of ``histgan_bi`` (same seed, same data), and bf16 inference of the fp32 model."""
    from histgan.eval.evaluate import evaluate
    from histgan.inference import load_run
    from histgan.data.synthetic import write_dataset

    root = write_dataset(work / "data", progress=False)  # the cpu preset: 64², 400 + 400 train, 16 + 16 test
    out, results = {}, {}
    for name, amp in (("fp32", False), ("bf16", True)):
        out[name], results[name] = _train_and_evaluate(name, amp, steps, root, work)
    model = load_run(work / "run_fp32")

    def bf16_inference(x, x_mask, ref, ref_mask):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(x, x_mask, ref, ref_mask).float()

    res = evaluate(bf16_inference, root, pairs="all", progress=False, name="fp32 weights, bf16 inference")
    diff = [abs(a["delta_e"] - b["delta_e"]) for a, b in zip(results["fp32"].pairs, res.pairs)]
    out["bf16_inference_of_fp32"] = {"delta_e_mean": res.summary["delta_e_mean"],
                                     "mean_abs_change_per_pair": statistics.mean(diff), "max_abs_change": max(diff)}
    out["steps"] = steps
    return out


def bench_batch(steps: int, work: Path, sizes: tuple[int, ...] = (1, 4)) -> dict:
    """The cpu preset's ``histgan_bi`` at each batch size for the same wall-clock budget: the
    seconds per step are timed side by side first, then batch ``b`` trains
    ``steps · t(1) / t(b)`` steps (``steps`` at batch 1) and is evaluated on the test pairs."""
    from histgan.data.synthetic import write_dataset

    cfg = make_config("cpu", variant="histgan_bi")
    trainers = {b: Trainer(cfg.replace(batch_size=b)) for b in sizes}
    per_step = {b: statistics.median(w for w, _ in runs) for b, runs in interleaved(trainers, 5).items()}
    root = write_dataset(work / "data", progress=False)
    out = {"steps_at_batch_1": steps, "sec_per_step": per_step}
    for b in sizes:
        n = max(1, round(steps * per_step[sizes[0]] / per_step[b]))
        out[f"batch {b}"], _ = _train_and_evaluate(f"batch{b}", False, n, root, work, batch_size=b)
        out[f"batch {b}"].update(batch_size=b, steps=n, images_seen=n * b)
    return out


def _print_rows(title: str, rows: list[dict], cols: list[str]) -> None:
    print(f"\n{title}")
    print(f"{'':<26}" + "".join(f"{c[:20]:>21}" for c in cols))
    for r in rows:
        cells = "".join(f"{r[c]:>21.3f}" if isinstance(r.get(c), float) else f"{str(r.get(c)):>21}" for c in cols)
        print(f"{r['name']:<26}{cells}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sections", nargs="+", choices=["variants", "constraint", "adam", "options", "colour", "batch"])
    p.add_argument("--quick", action="store_true", help="64² only, fewer options, 3 repetitions")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="image sizes for 'variants'")
    p.add_argument("--no-compile", action="store_true", help="options: leave out torch.compile (minutes of compiling)")
    p.add_argument("--reps", type=int, default=7, help="measured steps per configuration (median reported)")
    p.add_argument("--steps", type=int, default=300, help="training steps per run for 'colour'; at batch 1 for 'batch'")
    p.add_argument("--work", type=Path, default=Path("/tmp/histgan_bench"), help="data and runs for 'colour'")
    p.add_argument("--out", type=Path, default=RESULTS, help="results file (merged by section)")
    args = p.parse_args(argv)
    reps = 3 if args.quick else args.reps
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["machine"] = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                          "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"), "date": time.strftime("%Y-%m-%d %H:%M")}
    if "variants" in args.sections:
        rows = [r for size in ((64,) if args.quick else args.sizes) for r in bench_variants(size, reps)]
        for size in sorted({r["size"] for r in rows}):
            _print_rows(f"one train_step, cpu preset network at {size}² (median s; ratios)",
                        [r for r in rows if r["size"] == size],
                        ["median_s", "time_ratio", "ratio_to_cyclegan_sn", "median_cpu_s", "cpu_ratio",
                         "cpu_ratio_to_cyclegan_sn", "speedup_over_fast_false"])
        sizes = {r["size"] for r in rows}  # sizes not measured this time keep their earlier rows
        results["variants"] = [r for r in results.get("variants", []) if r.get("size") not in sizes] + rows
    if "constraint" in args.sections:
        rows = [r for size in ((64,) if args.quick else args.sizes) for r in bench_constraint(size, reps)]
        for size in sorted({r["size"] for r in rows}):
            _print_rows(f"the colour constraint's cost at {size}² (median s; ratios to cyclegan_sn)",
                        [r for r in rows if r["size"] == size], ["median_s", "time_ratio", "median_cpu_s", "cpu_ratio"])
        results["constraint"] = rows
    if "adam" in args.sections:
        rows = bench_adam(max(reps, 20))
        _print_rows("both optimiser steps of one training step (median s; ratio to the fused step)", rows,
                    ["median_s", "time_ratio", "parameters"])
        results["adam"] = rows
    if "options" in args.sections:
        rows = bench_options(reps, args.quick, not args.no_compile)
        _print_rows("cpu preset histgan_bi step (images/s; ratio to the first row)", rows,
                    ["median_s", "images_per_s", "throughput_ratio", "median_cpu_s", "cpu_throughput_ratio",
                     "warmup_s"])
        results["options"] = rows
    if "batch" in args.sections:
        results["batch"] = bench_batch(args.steps, args.work)
        print(json.dumps(results["batch"], indent=2))
    if "colour" in args.sections:
        results["colour"] = bench_colour(args.steps, args.work)
        print(json.dumps(results["colour"], indent=2))
    atomic_write_json(args.out, results)


if __name__ == "__main__":
    main(sys.argv[1:])
