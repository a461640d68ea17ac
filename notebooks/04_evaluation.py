# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Evaluation
#
# *Paper: {cite:t}`kobayashi-wada-colour-constraint`, §4 (evaluation: eq (12), Tables 1–2, Fig. 3–4) and §5 (its open problem: colour
# against shape).*
#
# The paper measures one thing: how close the colour of a generated image is to the colour of its
# reference, as a colour difference $\Delta E$ in CIE L\*a\*b\*, averaged over every test input paired
# with every test reference, and graded on a Japanese Industrial Standard tolerance scale. This page runs
# that protocol on the four trained models, sets their numbers beside the paper's and beside four
# **non-learned baselines**, redraws the paper's two figures, and then measures what $\Delta E$ cannot
# see: whether the output keeps the input's shading, and whether it looks like a photograph.
#
# The runs are read from `runs` (the book's main job trains the four variants side by side before this
# page runs); any variant missing there is trained first, the same way. With the default, quick
# parameters everything is tiny and the numbers mean nothing; the book shows the main job's run.

# %% tags=["parameters"]
runs = None  # folder with one run per variant, each named as histgan.book.sweep.run_id names them (variant, then the value); None: temporary
data = None  # dataset with testA/, testB/ and masks; None: a temporary synthetic set (generated)
data_preset = "quick"  # size of the synthetic set generated when `data` is missing (histgan.data.synthetic.PRESETS)
train_preset = "quick"  # TrainConfig preset of the runs trained here because they are missing
train_steps = 4  # training steps of those runs (None: the preset's)
pairs = "all"  # "all": every test input with every test reference (the paper's protocol), or n: n × n
checkpoint_pairs = 3  # n × n pairs per checkpoint for the colour-against-shape trade-off
masker = None  # the reference masker's folder; None: the masker folder inside the histgan_bi run (trained there if missing)
masker_steps = 20  # training steps of that masker when it is missing
device = "auto"  # where the generators run during evaluation: "auto" takes the GPU when there is one

# %%
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from matplotlib import cbook
from PIL import Image

import histgan
from histgan import colour_difference, images, metrics
from histgan.book import show, sweep
from histgan.config import VARIANTS
from histgan.data import synthetic
from histgan.eval import baselines, conclusions, evaluate, figures, trained_runs
from histgan.eval.report import PAPER_DELTA_E, markdown_table, write_report
from histgan.eval.results import load_eval_data
from histgan.train import parallel, variants
from histgan.train.masker import Masker, load_masker, masker_iou, predict_mask

runs = Path(runs) if runs is not None else Path(tempfile.mkdtemp(prefix="histgan-evaluation-"))
data = Path(data) if data is not None else runs / "data"
if not (data / "testA").is_dir():
    size = synthetic.PRESETS[data_preset]
    histgan.write_dataset(data, size=size.size, n_train=size.n_train, n_test=size.n_test, progress=False)
test_set = load_eval_data(data)
n_in, n_ref = (len(test_set.x), len(test_set.ref)) if pairs == "all" else (pairs, pairs)
print(f"test set: {len(test_set.x)} inputs × {len(test_set.ref)} references at {test_set.x.shape[-1]}²; "
      f"evaluated pairs: {n_in} × {n_ref} = {n_in * n_ref}")

# %% [markdown]
# ## 1. The measure: $\Delta E$ of mean colours, graded by JIS
#
# Convert both images to CIE L\*a\*b\* (sRGB, D65), average each over its foreground — the output over
# the input's mask (the translation keeps the shape), the reference over its own — and take the
# Euclidean distance of the two means (the paper's wording: "the pixel means"; its eq (12)):
#
# $$
# \Delta E = \sqrt{(\Delta L^*)^2 + (\Delta a^*)^2 + (\Delta b^*)^2} \tag{12}
# $$

# %%
show.show_source(colour_difference.delta_e)

# %% [markdown]
# The paper grades $\Delta E$ with its Table 1, a colour-tolerance table it attributes to the Japanese
# Industrial Standard. The package holds the table and says where it comes from:

# %% tags=["nbval-ignore-output"]
print(colour_difference.JIS_SOURCE, "\n")
print(f"{'grade':9s} {'ΔE range':>14s}   perceived")
for g in colour_difference.JIS_TABLE:
    print(f"{g.grade:9s} {g.low:6.1f} – {g.high:<6.1f}   {g.perceived}")
assert colour_difference.jis_grade(4.6) == "B" and colour_difference.jis_grade(14.1) == "D", "the paper's Table 2 grades"
assert colour_difference.jis_grade(3.2) == "B" and colour_difference.jis_grade(3.1999) == "A", "ranges are lower-inclusive"

# %% [markdown]
# ## 2. The four runs
#
# Runs that are missing (no completion marker in their folder) are trained now, side by side: one
# process per CPU core with one thread each, or one per GPU (`histgan.train.parallel`), each resuming its
# folder, so an interrupted evaluation picks up where it stopped. The same jobs are the main job's
# training stage:

# %%
show.show_source(variants.variant_jobs)

# %% tags=["nbval-ignore-output"]
run_dirs = {v: runs / sweep.run_id({"variant": v}, ["variant"]) for v in VARIANTS}
masker = Path(masker) if masker is not None else run_dirs["histgan_bi"] / "masker"
jobs = variants.variant_jobs(runs, data, train_preset, train_steps, masker_steps, progress=False)
jobs = [j for j in jobs if j.name in VARIANTS or j.run_dir == masker]
if not all(j.done for j in jobs):
    print(f"training {[j.name for j in jobs if not j.done]} ({train_preset} preset) into {runs}")
    parallel.run_parallel(jobs, progress=False)

# %%
models = {v: histgan.load_run(d, device=device) for v, d in run_dirs.items()}
for v, m in models.items():
    print(f"{v:12s} step {m.step:5d}, {m.config.image_size}², K = {m.config.bins}, λ_hist = {m.config.lambda_hist}")
assert all(m.step == m.config.steps for m in models.values()), "every run finished its training"

# %% [markdown]
# Their training curves side by side: the adversarial loss of $G$ and the colour term
# $L_\text{hist}$ of $G$'s outputs (for the two plain CycleGANs it is only monitored: they get no gradient
# from it).

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(11, 3))
for v, d in run_dirs.items():
    log = [json.loads(line) for line in (d / "losses.jsonl").read_text().splitlines() if line.strip()]
    steps_logged = [r["step"] for r in log]
    axes[0].plot(steps_logged, [r["gan_G"] for r in log], lw=1, label=v)
    axes[1].plot(steps_logged, [r["hist_y"] for r in log], lw=1, label=v)
axes[0].set_title("adversarial loss of G, eq (9)", fontsize=9)
axes[1].set_title("L_hist of G's outputs, eq (6)", fontsize=9)
for ax in axes:
    ax.set_xlabel("step")
    ax.legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# ## 3. The protocol, and baselines that learn nothing
#
# Every input is translated with every reference, batched, and each output is measured: $\Delta E$ to
# the reference eq (12), its grade, CIEDE2000, shape against the truth, and realism.
#
# **Shape against the truth.** On the synthetic benchmark the true target of every pair is known: the
# input's knee rendered with the reference's skin, texture, light, scene and camera. The colour code is
# taken over the reference's foreground only, so the background of the target is something no model is
# told; a fair shape score must not see it. The main shape score therefore pastes the output's foreground
# onto the truth's background first, and then averages the SSIM of lightness over the input's mask (an
# SSIM merely restricted to the mask would still see the background through its 11 × 11 window, and at
# 64² a thin leg is mostly edge). A second column does the same after a small Gaussian low-pass, so that a
# different draw of random skin texture is not counted as a shape error. The whole-image SSIM stays as a
# secondary column, labelled for what it mixes in.

# %%
show.show_source(metrics.foreground_ssim)

# %% [markdown]
# **Realism, without pretrained networks.** Two set-level measures compare a model's outputs with
# held-out real photographs of domain $Y$. (a) The sliced Wasserstein distance between the sets' 7 × 7
# patches at every level of a Laplacian pyramid {cite:p}`karras2018progressive`: zero for identical
# distributions, growing with blur, noise and wrong texture. (b) A classifier two-sample test
# {cite:p}`lopezpaz2017c2st`: a small CNN is trained from scratch on half of the outputs and half of the real
# images and scored on the rest; an accuracy of 0.5 means it cannot tell them apart, and with $m$ held-out
# images a set, two sets it cannot tell apart still score $0.5 \pm 0.5/\sqrt{2m}$ by chance (one standard
# deviation; `histgan.eval.realism.c2st_null_sd`), so accuracies closer than about twice that are not told
# apart by the test itself. Each is reported over whole images and over the foreground only (every
# background, generated and real, replaced by one grey), since the background is not determined by the
# colour code while the baselines are handed the reference's background colour. Three calibration rows put the numbers on a scale: other real images
# (the floor), the true targets (a perfect translation), and the untranslated inputs (the ceiling).
# Realism needs at least 32 images per set, so with the quick parameters it is left out.

# %%
show.show_source(evaluate.evaluate)

# %% [markdown]
# $\Delta E$ of mean colours can be met without learning anything: painting the input's silhouette with the
# reference's mean colour scores $\Delta E \approx 0$ by construction. So the table carries four
# non-learned rows (the baselines module explains each): (a) that flat fill, (b) the input's shading tinted
# with the mean colour, (c) Reinhard et al.'s colour transfer {cite:p}`reinhard2001colour`, (d) histogram
# matching. They set the learned models' $\Delta E$ in context, and the shape columns show what learning
# adds beyond colour.

# %% tags=["nbval-ignore-output"]
results = {v: evaluate.evaluate(m, test_set, pairs, device=device, progress=False) for v, m in models.items()}
for name, baseline in baselines.BASELINES.items():
    results[name] = evaluate.evaluate(baseline, test_set, pairs, progress=False, name=name)
checkpoints = {v: trained_runs.evaluate_checkpoints(d, test_set, checkpoint_pairs, device=device, progress=False)
               for v, d in run_dirs.items()}
report = write_report(results, runs / "report", checkpoints, figures=False)
print(f"report written: {', '.join(sorted(p.name for p in report.values()))} in {runs / 'report'}")

# %% [markdown]
# ## 4. Table 2, on this data
#
# One row per model, the paper's variants in its order, then the baselines, in three tables that share
# the rows: the paper's colour columns, shape against the truth, and realism (`table2.md` in the report
# folder holds all columns in one). In the first, the last column is the paper's own number **on its real
# knee photographs**: beside ours for magnitude, not measured on this data.

# %% tags=["nbval-ignore-output"]
display(Markdown("**Table 2a: colour.**\n\n" + markdown_table(results, ["colour"])))

# %% tags=["nbval-ignore-output"]
display(Markdown("**Table 2b: shape against the true target.**\n\n"
                 + markdown_table(results, ["shape"])))

# %% tags=["nbval-ignore-output"]
has_realism = any("swd_fg" in r.summary for r in results.values())
display(Markdown("**Table 2c: realism.**\n\n" + markdown_table(results, ["realism"]) if has_realism
                 else "**Table 2c: realism** needs at least 32 images per set; these parameters evaluate too few pairs."))

# %% tags=["nbval-ignore-output"]
delta = {n: r.summary["delta_e_mean"] for n, r in results.items()}
for n in results:
    print(f"{n:30s} mean ΔE {delta[n]:6.1f}  grade of the mean: {results[n].summary['grade_of_mean']}")
assert all(np.isfinite(d) and 0 <= d < 260 for d in delta.values()), "a mean ΔE lies in the sRGB gamut's range"
assert delta["baseline_flat_fill"] < 0.5, "the flat fill paints the reference's mean colour: ΔE ≈ 0"
assert all(r.summary["n_pairs"] == n_in * n_ref for r in results.values()), "every model saw every pair"

# %% [markdown]
# **The headline number.** The paper's claim is that conditioning on the reference's histogram cuts the
# colour error of a plain CycleGAN several-fold: 14.1 → 4.6, a ratio of 3.1. Our target for the main
# job's CPU-sized runs is a ratio of at least 3. The ratio this execution measured:

# %% tags=["nbval-ignore-output"]
ratio = delta["cyclegan"] / delta["histgan_bi"]
paper_ratio = PAPER_DELTA_E["cyclegan"] / PAPER_DELTA_E["histgan_bi"]
print(f"mean ΔE: CycleGAN {delta['cyclegan']:.1f}, both directions {delta['histgan_bi']:.1f} → "
      f"ratio {ratio:.1f} (paper {paper_ratio:.1f}; target ≥ 3: {'met' if ratio >= 3 else 'not met'})")
assert np.isfinite(ratio) and ratio > 0

# %% [markdown]
# ## 5. Fig. 3: one row per pair, one column per model
#
# As in the paper: input | reference | both directions | one direction | CycleGAN + SN | CycleGAN, for
# input $i$ with reference $i$, with one column the paper could not have: the ground truth, the input's
# knee photographed with the reference's skin, scene and camera. Look along the limbs' edges: bright or
# coloured rims there are what the shape table's edge-excess column measures, and stripes what the
# realism table's stripe share measures.

# %% tags=["hide-input"]
learned = {v: results[v] for v in VARIANTS}
display(figures.fig3(learned, truth=test_set))

# %% [markdown]
# The same rows for the baselines — what colour transfer without learning looks like. Each recolours
# the grey render inside its mask; none can invent the skin's texture, the scene or the camera, and the
# realism columns of Table 2c measure exactly that:

# %% tags=["hide-input"]
display(figures.fig3({n: results[n] for n in baselines.BASELINES}, truth=test_set))

# %% [markdown]
# ## 6. Fig. 4: every input with every reference
#
# Inputs down the left, references along the top, the both-directions model's outputs in the cells. Along
# a row the shape should stay and the colour follow the column; a plain CycleGAN, which never sees the
# reference, paints every row the same.

# %% tags=["hide-input"]
display(figures.fig4(results["histgan_bi"]))
display(figures.fig4(results["cyclegan"]))

# %% [markdown]
# ## 7. Histograms: reference against output
#
# Per channel, the foreground histogram of the reference (grey) and of the output (line) — the quantity
# $L_\text{hist}$ trains, here as a counting histogram:

# %% tags=["hide-input"]
display(figures.histogram_overlay(results["histgan_bi"]))
display(figures.histogram_overlay(results["cyclegan"]))

# %% [markdown]
# ## 8. Colour against shape over training
#
# The paper's open problem: as training goes on, colour fidelity improves but the shading flattens, because
# a flat image makes the colour target easy. Each run's numbered checkpoints, evaluated on a few pairs:
# mean $\Delta E$ (lower is better colour) against the foreground SSIM to the true target (higher is better
# shape). A move to the left and down is the trade-off the paper describes.

# %% tags=["nbval-ignore-output", "hide-input"]
display(figures.colour_vs_shape(checkpoints))
shape_key = "ssim_gt_fg_mean" if test_set.synthetic else "ssim_input_lum_mean"
for v, results_v in checkpoints.items():
    trail = ", ".join(f"step {r.step}: ΔE {r.summary['delta_e_mean']:.1f} / SSIM {r.summary[shape_key]:.2f}"
                      for r in results_v)
    print(f"{v:12s} {trail}")
assert all(len(c) >= 1 for c in checkpoints.values())

# %% [markdown]
# ## 9. References without masks
#
# The colour code is the histogram of the reference's foreground. The benchmark ships masks; a user's
# photograph does not, and counting all of it as foreground mixes the wall behind the knee into the code.
# The package therefore carries a small segmentation network: an encoder–decoder with skip connections,
# of the U-Net family {cite:p}`ronneberger2015unet` that the survey of image-producing networks
# {cite:p}`yanai2017survey` opens with. It is trained on the benchmark's photographs and their masks,
# with colour, background and geometric augmentation so that it learns skin against background rather
# than one renderer's backdrops. The main job trains it beside the four variants, into the `histgan_bi`
# run's folder, where `python -m histgan translate --reference-mask auto` (the default) finds it.

# %%
show.show_source(Masker)

# %% [markdown]
# Two measurements: the intersection over union of its masks with the true ones on the held-out reference
# photographs, and Table 2's $\Delta E$ of the both-directions model over every pair when each reference's
# colour code is taken over the *predicted* mask (the $\Delta E$ itself is still measured against the
# reference's true foreground colour):

# %% tags=["nbval-ignore-output"]
mask_net = load_masker(masker)
masker_info = json.loads((masker / "metrics.json").read_text())
iou_held_out = masker_iou(mask_net, data, "testB")
auto_masks = evaluate.evaluate(evaluate.with_predicted_reference_masks(models["histgan_bi"], mask_net), test_set,
                               pairs, device=device, progress=False, realism=False, name="predicted masks")
d_true, d_auto = delta["histgan_bi"], auto_masks.summary["delta_e_mean"]
print(f"masker: {masker_info['parameters']:,} parameters, {masker_info['steps']} steps in {masker_info['seconds']:.0f} s")
print(f"IoU on the {len(test_set.ref)} held-out reference photographs: {iou_held_out:.3f}")
print(f"both directions, mean ΔE over {auto_masks.summary['n_pairs']} pairs: true reference masks {d_true:.2f}, "
      f"predicted {d_auto:.2f} (difference {d_auto - d_true:+.2f})")
assert 0.0 <= iou_held_out <= 1.0 and np.isfinite(d_auto)

# %% [markdown]
# Its masks on held-out references (top: photograph, middle: true mask, bottom: predicted), and on a
# photograph it was never meant for: the portrait that ships with matplotlib as sample data, a person in
# uniform in front of a flag. The masker knows bare knees on tables, cloth and floors, not faces, hair,
# uniforms or flags; whatever it marks there is shown as it is, and a user's portrait should come with
# a mask file or an alpha channel.

# %% tags=["hide-input"]
k = min(6, len(test_set.ref))
predicted = predict_mask(mask_net, test_set.ref[:k])
plt.figure(figsize=(1.3 * k, 4))
plt.imshow(images.image_grid([[test_set.ref[j] for j in range(k)], [test_set.ref_mask[j] for j in range(k)],
                           [predicted[j] for j in range(k)]]))
plt.axis("off")
plt.title("held-out references | true masks | predicted masks (rows)", fontsize=9)

# %% tags=["nbval-ignore-output"]
with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as photo:
    portrait = torch.from_numpy(np.asarray(photo.convert("RGB").resize((96, 128)), dtype=np.float32) / 127.5 - 1)
portrait = portrait.permute(2, 0, 1)
portrait_mask = predict_mask(mask_net, portrait)[0]
fig, axes = plt.subplots(1, 2, figsize=(4.5, 3))
axes[0].imshow(images.to_display(portrait))
axes[1].imshow(images.to_display(portrait_mask), cmap="gray")
for ax, title in zip(axes, ("matplotlib's sample portrait", "predicted foreground")):
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()
fig.tight_layout()
print(f"share of the portrait marked as foreground: {float(portrait_mask.mean()):.2f}")

# %% [markdown]
# ## 10. References outside the training colours
#
# Every reference so far was drawn from the benchmark's skin swatches, the same range the training
# photographs cover. Real photographs of skin are often redder and more saturated than that. To see
# whether the colour code generalises, every test reference is recoloured inside its mask, keeping its
# lightness: hue turned 10° towards red and chroma raised by 30 % (`evaluate.shift_reference_colours`).
# No model saw such colours in training; $\Delta E$ is measured against the recoloured references.

# %% tags=["nbval-ignore-output"]
shifted_set = evaluate.shift_reference_colours(test_set, hue_degrees=-10.0, chroma_scale=1.3)
shifted = {"histgan_bi": evaluate.evaluate(models["histgan_bi"], shifted_set, pairs, device=device, progress=False,
                                           realism=False)}
for name in ("baseline_reinhard", "baseline_histogram_matching"):
    shifted[name] = evaluate.evaluate(baselines.BASELINES[name], shifted_set, pairs, progress=False, realism=False,
                                      name=name)
for name, r in shifted.items():
    print(f"{name:30s} mean ΔE: swatch references {delta[name]:5.2f}, redder and more saturated "
          f"{r.summary['delta_e_mean']:5.2f} ({r.summary['grade_of_mean']})")
assert all(np.isfinite(r.summary["delta_e_mean"]) for r in shifted.values())

# %% [markdown]
# ## 11. What reproduced, and what did not
#
# The sentences below are computed from this execution's numbers, so they stay true whatever the numbers
# are. (With the quick parameters the models have trained for a few steps and the comparison means
# nothing; the book shows the main job's run.)

# %% tags=["nbval-ignore-output"]
statements = conclusions.reproduction_statements(results, shape_key, shifted, iou_held_out, d_auto)
display(Markdown("\n".join(f"* {s}" for s in statements)))

# %% [markdown]
# How to read these lines. The protocol is the paper's, but the data are not: a synthetic benchmark of
# rendered knees at low resolution, with ground truth the paper did not have, and models trained for
# minutes on a CPU instead of hours on a GPU. So the comparison that carries over is the *ratio* between
# the plain CycleGAN and the conditioned models, not the absolute $\Delta E$. A plain CycleGAN never sees
# the reference: its colours come from its training set (the paper: "generated at random from the learnt
# colour distribution"), which is why its $\Delta E$ to a specific reference is large, and why a model that
# reads the reference's histogram can beat it by a wide margin. The baselines
# make a second point the paper does not: matching a mean colour is easy (a flat fill does it exactly), so
# the case for a learned model rests on what the other columns measure: the shading kept (Table 2b), and
# whether the output looks like a photograph of skin rather than a recoloured render (Table 2c), which
# only a model that has learned the photographs can achieve. The statements above say, for this run,
# where that case stands.
#
# ## Summary
#
# - $\Delta E$ eq (12) between mean L\*a\*b\* colours, over every input × reference pair,
#   graded by the paper's JIS table; the package's `evaluate` and `write_report` do the protocol and write
#   `pairs.csv`, `summary.json` and `table2.md` into the report folder.
# - The Table 2 analogue, the ratio CycleGAN / both directions against the target of 3, and the grades are
#   printed above for this execution.
# - Shape is measured against the true target on the foreground only, and realism by two set-level tests
#   without pretrained networks (sliced Wasserstein distance of Laplacian patches, a classifier two-sample
#   test), each calibrated by other real images, the true targets and the untranslated inputs.
# - Fig. 3 (with the ground truth) and Fig. 4 analogues, histogram overlays and the colour-against-shape
#   trail over checkpoints show what the single number hides.
# - References redder and more saturated than the training photographs test whether the colour code
#   generalises beyond the range it was trained on.
# - A small U-Net finds the skin in references without masks; its IoU and its effect on $\Delta E$ are
#   measured above.
