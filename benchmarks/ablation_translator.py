"""What makes the translator better: one option changed at a time, same seed, same steps, same data.

    python benchmarks/ablation_translator.py [--only NAME ...] [--data data/synthetic] [--out runs/ablation]
                                            [--jobs N] [--threads T] [--steps 1000]

Trains ``histgan_bi`` with the ``cpu`` preset plus each point's overrides (:data:`POINTS`) into
``--out/NAME/`` — side by side, one process per core (:func:`histgan.train.parallel.run_parallel`), each
resumable — then evaluates every run over all test pairs of the benchmark with the evaluation page's
protocol (:func:`histgan.eval.evaluate.evaluate`: ΔE of eq (12), foreground SSIM against the true target,
sliced Wasserstein distance, classifier two-sample test, stripe energy) and merges one row per point
into ``benchmarks/results/ablation_translator.json``, with the date, the machine and the seconds per
training step. Prints the table. A point that is already in the results file is not trained again
unless named with ``--only``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path

from histgan.io import atomic_write_json
from histgan.train.parallel import Job, run_parallel
from histgan.eval.report import ablation_table

#: The cpu preset as it was before this ablation; every single change below is made to it.
BEFORE = {"generator": "resnet", "gan_loss": "bce", "ema": 0.0}
#: Each point: the overrides of ``make_config("cpu", variant="histgan_bi", ...)`` and what it tests.
POINTS: dict[str, tuple[dict, str]] = {
    "before": (BEFORE, "the cpu preset before this ablation: ResNet generator, concat+film, BCE, λ_hist = 2"),
    "lsgan": ({**BEFORE, "gan_loss": "lsgan"}, "least-squares adversarial loss (Mao et al.), CycleGAN's own choice"),
    "lambda_hist_5": ({**BEFORE, "lambda_hist": 5.0}, "a stronger histogram loss, eq (6)"),
    "adain": ({**BEFORE, "injection": "adain"}, "AdaIN: the code sets scale and shift after every instance norm"),
    "unet": ({**BEFORE, "generator": "unet"}, "U-Net skip connections (pix2pix's generator)"),
    "ema": ({**BEFORE, "ema": 0.995}, "translate with a moving average of the generators' weights (horizon ~200 steps)"),
    "unet+lsgan+ema": ({}, "the three together: the cpu preset now"),
    "warmup_200": ({**BEFORE, "warmup": 200}, "200 steps without the adversarial terms first"),
    "flip": ({**BEFORE, "flip": True}, "random horizontal flips of the training images"),
    # Made to the cpu preset as it is now (U-Net, least squares, weight average), measured on another
    # machine than the points above (other CPUs give other last bits, and training amplifies them), so
    # the preset is measured again beside them:
    "preset_here": ({}, "the cpu preset again, on the machine of the two points below"),
    "reflect": ({"padding": "reflect"}, "reflection padding in G's 3×3 convs, against the border frame"),
    "recolour": ({"recolour_hue": 15.0, "recolour_chroma": 1.4},
                 "colour augmentation: the Y photographs' skin hue turned ±15°, chroma ×[1/1.4, 1.4]"),
    # Made to the cpu preset as it is now, on the machine of "preset_here": the generator follows the
    # reference's lightness (slope 0.97) but only half its a* and b* (slopes 0.60 and 0.52), so these
    # points make the colour loss see small shifts of chroma.
    "emd": ({"hist_kind": "emd"},
            "eq (6) as the earth mover's distance per channel: linear, not quadratic, in a small shift"),
    "mean_colour": ({"lambda_mean": 0.1},
                    "a mean-colour term: 0.1 × ΔE (eq 12) of the fake's mean L*a*b* vs the reference's"),
    "mean_colour_0.3": ({"lambda_mean": 0.3}, "the mean-colour term with weight 0.3"),
    "mean_colour_1": ({"lambda_mean": 1.0}, "the mean-colour term with weight 1"),
    "colour_head": ({"colour_head": True},
                    "a colour head: the code scales and shifts the output's R, G, B before the tanh"),
    "colour_head+mean": ({"colour_head": True, "lambda_mean": 0.1}, "the colour head and the mean-colour term (0.1)"),
    # A linear probe finds the references' chroma apart from their lightness in their histograms (held-out
    # R² 0.96) but much less of it in colour_head+mean's codes (0.46 for a*, 0.61 for b*). Does the
    # encoder's spectral norm lose it? These free the encoder (measured: it does not help):
    "free_encoder+mean": ({"encoder_sn": False, "lambda_mean": 0.1},
                          "the histogram encoder without spectral norm, and the mean-colour term (0.1)"),
    "free_encoder+head+mean": ({"encoder_sn": False, "colour_head": True, "lambda_mean": 0.1},
                               "the encoder without spectral norm, the colour head and the mean-colour term (0.1)"),
    # The identity term made to restore colour: an exact per-pixel target for following the code.
    "identity_recolour": ({"identity_hue": 20.0, "identity_chroma": 1.5},
                          "G(y recoloured: hue ±20°, chroma ×[1/1.5, 1.5], h(y)) ≈ y as the identity term"),
    "identity_recolour+head+mean": (
        {"identity_hue": 20.0, "identity_chroma": 1.5, "colour_head": True, "lambda_mean": 0.1},
        "the colour-restoring identity, the colour head and the mean-colour term"),
    # None of the above reaches ΔE 3.2 in 1,000 steps: is it the number of steps?
    "head+mean_2000_steps": ({"colour_head": True, "lambda_mean": 0.1, "steps": 2000},
                             "colour_head+mean trained for 2,000 steps instead of 1,000"),
    # Even with weight 1 the mean-colour term itself stays near ΔE 4.5 on the training pairs after 1,000
    # steps (losses.jsonl): the translator underfits the colour. The FiLM projections start at zero and
    # Adam moves each weight by about lr = 2e-4 a step, so the code's lever grows slowly; let it learn faster:
    "head+mean+code_lr_10": ({"colour_head": True, "lambda_mean": 0.1, "code_lr": 10.0},
                             "colour_head+mean with the colour code's path learning 10× faster"),
    "head+mean+code_lr_30": ({"colour_head": True, "lambda_mean": 0.1, "code_lr": 30.0},
                             "colour_head+mean with the colour code's path learning 30× faster"),
    # The code need not be learnt to carry the reference's mean colour: append it, computed exactly from
    # the histogram (per-channel mean and spread over the bin centres).
    "head+mean+moments": ({"colour_head": True, "lambda_mean": 0.1, "code_moments": True},
                          "colour_head+mean, the code carrying the reference histogram's per-channel mean and std"),
    "head+mean+moments+code_lr_10": (
        {"colour_head": True, "lambda_mean": 0.1, "code_moments": True, "code_lr": 10.0},
        "colour_head+mean+moments with the colour code's path learning 10× faster"),
    "head+mean+moments+code_lr_30": (
        {"colour_head": True, "lambda_mean": 0.1, "code_moments": True, "code_lr": 30.0},
        "colour_head+mean+moments with the colour code's path learning 30× faster"),
    "head+mean_0.3+moments+code_lr_10": (
        {"colour_head": True, "lambda_mean": 0.3, "code_moments": True, "code_lr": 10.0},
        "head+mean+moments+code_lr_10 with the mean-colour term at 0.3"),
    # The preset now (the point head+mean+moments+code_lr_30) with another seed: how far one seed's ΔE is from another's.
    "preset_seed_1": ({"colour_head": True, "lambda_mean": 0.1, "code_moments": True, "code_lr": 30.0, "seed": 1},
                      "the cpu preset now (head+mean+moments+code_lr_30), seed 1"),
    # The foreground is now as real as the true targets (SWD, C2ST), the whole image is not: the code says
    # nothing of what lies behind the skin, so every output gets one grey backdrop, where the baselines
    # paint the reference's. Tell the generator the reference's backdrop too:
    "backdrop": ({"colour_head": True, "lambda_mean": 0.1, "code_moments": True, "code_lr": 30.0,
                  "backdrop_code": "everywhere"},
                 "the preset now, every layer that reads the code also reading the reference background's mean, "
                 "spread and presence"),
    # Whole images became far more like photographs, but the skin's colour and shading suffered: the decoder's
    # FiLMs and the colour head act on whole channels, skin and backdrop alike. Let only the middle layer read
    # the backdrop, where the features still know where the background is:
    "backdrop_middle": ({"colour_head": True, "lambda_mean": 0.1, "code_moments": True, "code_lr": 30.0,
                         "backdrop_code": "middle"},
                        "the preset now, the middle layer alone also reading the reference background"),
    # The middle layer alone does not paint the backdrop (whole images no more real) and costs colour too; the
    # decoder's FiLMs do paint it. Keep the backdrop out of the colour head alone, which shifts R, G, B everywhere:
    "backdrop_decoder": ({"colour_head": True, "lambda_mean": 0.1, "code_moments": True, "code_lr": 30.0,
                          "backdrop_code": "decoder"},
                         "the preset now, every layer but the colour head also reading the reference background"),
    # The decoder's FiLMs paint the backdrop but, acting on whole channels, tint the skin's dark, shaded edges
    # (which look like a render's black background) with it: colour streaks along the limbs. Give the backdrop
    # a FiLM of its own in every decoder level, behind a per-pixel gate the level computes from its features:
    "backdrop_gated": ({"colour_head": True, "lambda_mean": 0.1, "code_moments": True, "code_lr": 30.0,
                        "backdrop_code": "gated"},
                       "the preset now, the reference background read by the middle layer and, behind a "
                       "per-pixel gate, by a FiLM of its own in every decoder level"),
    "backdrop_decoder_seed_1": ({"colour_head": True, "lambda_mean": 0.1, "code_moments": True, "code_lr": 30.0,
                                 "backdrop_code": "decoder", "seed": 1},
                                "the preset now (backdrop_decoder), seed 1: how much of a difference is the seed's"),
    "backdrop_gated_seed_1": ({"colour_head": True, "lambda_mean": 0.1, "code_moments": True, "code_lr": 30.0,
                               "backdrop_code": "gated", "seed": 1},
                              "as backdrop_gated, seed 1: how much of a difference is the seed's"),
    # Along the limbs' edges every variant paints thin bright, coloured rims that no true target has, worst
    # on dark skin before a dark backdrop. Our reading: the cycle term (eq 10) makes F recover the render's
    # sharp grey-on-black silhouette from G's output, and where skin and backdrop are alike G marks the edge
    # for it. A weaker cycle term asks less of that:
    "gated+cycle_5": ({"colour_head": True, "lambda_mean": 0.1, "code_moments": True, "code_lr": 30.0,
                       "backdrop_code": "gated", "lambda_cycle": 5.0},
                      "backdrop_gated with the cycle term at weight 5 instead of 10"),
    # The same reading, attacked at its root: give both generators their input's mask. F then learns the
    # silhouette from the mask in the cycle, and G need not mark it; the mask also tells the render's black
    # background from its darkest shaded skin, which the grey level alone cannot:
    "gated+mask_input": ({"colour_head": True, "lambda_mean": 0.1, "code_moments": True, "code_lr": 30.0,
                          "backdrop_code": "gated", "mask_input": True},
                         "backdrop_gated with the input's foreground mask as a fourth input channel of G and F"),
    "gated+mask_input_seed_1": ({"colour_head": True, "lambda_mean": 0.1, "code_moments": True, "code_lr": 30.0,
                                 "backdrop_code": "gated", "mask_input": True, "seed": 1},
                                "as gated+mask_input, seed 1: how much of a difference is the seed's"),
    # The middle-layer injection conv is followed by an instance norm, which removes the code's part of it
    # everywhere but on the zero-padded border; the decoder's FiLMs and the colour head carry the code
    # everywhere. The conv costs 5-6 % of a training step: does the translator need it?
    "gated+mask_input+film_only": ({"colour_head": True, "lambda_mean": 0.1, "code_moments": True, "code_lr": 30.0,
                                    "backdrop_code": "gated", "mask_input": True, "injection": "film"},
                                   "gated+mask_input without the middle layer's injection conv (FiLM in the "
                                   "decoder and the colour head only)"),
    "gated+mask_input+film_only_seed_1": ({"colour_head": True, "lambda_mean": 0.1, "code_moments": True,
                                           "code_lr": 30.0, "backdrop_code": "gated", "mask_input": True,
                                           "injection": "film", "seed": 1},
                                          "as gated+mask_input+film_only, seed 1: how much of a difference is the "
                                          "seed's"),
}

#: Every point above was measured before the cpu preset took the options of the later rows (colour, backdrop,
#: the input's mask, FiLM alone); they stay as they were for each point unless it names them, so that each
#: point is still the run it was (the preset now is the point ``gated+mask_input+film_only``).
COLOUR_OFF = {"colour_head": False, "lambda_mean": 0.0, "code_moments": False, "code_lr": 1.0, "backdrop_code": "off",
              "mask_input": False, "injection": "concat+film"}
POINTS = {name: ({**COLOUR_OFF, **overrides}, what) for name, (overrides, what) in POINTS.items()}

METRICS = ("delta_e_mean", "delta_e2000_mean", "ssim_gt_fg_mean", "ssim_gt_fg_lowpass_mean", "ssim_input_lum_mean",
           "swd_whole", "swd_fg", "c2st_whole", "c2st_fg", "stripes")
RESULTS = Path(__file__).parent / "results" / "ablation_translator.json"


def _seconds_per_step(run: Path) -> float | None:
    lines = (run / "losses.jsonl").read_text().splitlines() if (run / "losses.jsonl").is_file() else []
    return round(json.loads(lines[-1])["sec_per_step"], 3) if lines else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(POINTS), help="points to (re)run; default: missing ones")
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--jobs", type=int, default=None, help="points at once (default: one per core)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per point (default: cores / jobs)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the cpu preset's)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.data.is_dir():
        parser.error(f"--data {args.data} does not exist; make it with 'python -m histgan data synth --out {args.data}'")
    results = json.loads(args.results.read_text()) if args.results.is_file() else {"points": {}}
    names = args.only or [n for n in POINTS if n not in results["points"]]
    extra = {} if args.steps is None else {"steps": args.steps}
    jobs = [Job(name=n, run_dir=args.out / n, target="histgan.train.variants:train_run",
                params={"run_dir": str(args.out / n), "preset": "cpu", "variant": "histgan_bi", "data": str(args.data),
                        "resume": "auto", **extra, **POINTS[n][0]}) for n in names]
    run_parallel(jobs, workers=args.jobs, threads=args.threads)

    import torch

    from histgan.eval.evaluate import evaluate, shift_reference_colours
    from histgan.eval.results import load_eval_data

    torch.set_num_threads(os.cpu_count() or 1)
    test_set = load_eval_data(args.data)
    shifted_set = shift_reference_colours(test_set, hue_degrees=-10.0, chroma_scale=1.3)  # as the evaluation page
    for n in names:
        s = evaluate(args.out / n, test_set, pairs="all", progress=False).summary
        shifted = evaluate(args.out / n, shifted_set, pairs="all", progress=False, realism=False).summary
        # read again: another instance of this script (other points, other cores) may have written since
        results = json.loads(args.results.read_text()) if args.results.is_file() else {"points": {}}
        results["points"][n] = {"overrides": POINTS[n][0], "what": POINTS[n][1], "step": s["step"],
                                "sec_per_step": _seconds_per_step(args.out / n),
                                **{k: s[k] for k in METRICS}, "delta_e_shifted_mean": shifted["delta_e_mean"]}
        results["points"] = {**{k: results["points"][k] for k in POINTS if k in results["points"]},
                             **{k: v for k, v in results["points"].items() if k not in POINTS}}  # POINTS' order
        results.update(date=datetime.date.today().isoformat(), machine=f"{platform.processor() or platform.machine()}, "
                       f"{os.cpu_count()} cores, one thread per point", data=str(args.data),
                       protocol="cpu preset, histgan_bi, seed 0, all test pairs")
        atomic_write_json(args.results, results)
    print(ablation_table(results))


if __name__ == "__main__":
    main()
