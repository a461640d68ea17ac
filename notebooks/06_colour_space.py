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
# # The colour code as a latent space
#
# *Paper: {cite:t}`kobayashi-wada-colour-constraint`, §3.3 (the colour code: a fully connected encoding of
# the reference's histogram injected into the generator). The check against true intermediates follows
# {cite:t}`yabumoto-gan-painting`, who compare generated in-between paintings with real ones.*
#
# The trained generator sees a reference only through its **colour code** $c = E(h_\text{ref})$, a short
# vector ($D$ numbers). Nothing forces a user to obtain $c$ from one reference image: this page treats
# it as a small latent space to steer. It does two things with it:
#
# 1. **Morphing** — mix the codes of two (or more) references, $c = \sum_r w_r E(h_r)$, and watch the
#    output move from one skin colour to the other; as a comparison, mix the histograms instead,
#    $E(\sum_r w_r h_r)$. On the synthetic benchmark every frame has a true target — the input's knee
#    rendered at the skin colour between the two references' — so the frames can be graded.
# 2. **Inversion** — for one input, optimise $c$ itself, the network frozen, until the output's
#    histogram (and mean colour) hits the reference's: test-time optimisation of the code, as a GAN is
#    inverted by optimising its latent {cite:p}`zhu2016generative`, here with Adam {cite:p}`kingma2015adam`.
#
# With the default, quick parameters the run is tiny and the numbers mean nothing; the book shows the
# main job's `histgan_bi` run.

# %% tags=["parameters"]
run_dir = None  # the histgan_bi run folder; None: a tiny run trained here
data = None  # dataset with testA/, testB/ and masks; None: a temporary synthetic set (generated)
train_steps = 4  # training steps of the tiny run made when run_dir is missing
morph_inputs = 2  # how many test inputs are morphed between the two references
frames = 5  # frames per morph, t evenly from 0 to 1
refine_pairs = 4  # test pairs whose codes are refined ("all": every input with every reference)
refine_steps = [2, 5, 10]  # step counts measured along one refinement path (its length is the largest)
seed = 0  # seeds the choice of pairs
device = "cpu"  # where the generator runs

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

import histgan
from histgan import colour_code, colour_difference, config, images
from histgan.book import show
from histgan.book.frame_slider import frame_slider
from histgan.eval import colour_code_study as study
from histgan.eval.results import load_eval_data
from histgan.train import loop

torch.manual_seed(seed)
work = Path(tempfile.mkdtemp(prefix="histgan-colour-space-"))
data = Path(data) if data is not None else work / "data"
if not (data / "testA").is_dir():
    histgan.write_dataset(data, size=32, n_train=6, n_test=3, progress=False)
if run_dir is None:
    tiny = config.make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(work / "run"), steps=train_steps)
    run_dir = loop.fit(tiny, progress=False)
model = histgan.load_run(run_dir, device=device)
test_set = load_eval_data(data)
print(f"{model.config.variant}, step {model.step}: code length D = {model.config.code_dim}, K = {model.config.bins}; "
      f"test set {len(test_set.x)} inputs × {len(test_set.ref)} references at {test_set.x.shape[-1]}²")
assert model.G.conditioned, "the colour code needs a conditioned generator"

# %% [markdown]
# ## 1. Mixing references
#
# Weights are one per reference, non-negative and summing to 1; they are checked, never normalised
# behind the user's back, so a typo cannot extrapolate beyond the references. For two references a
# single number $t$ stands for the weights $(1 - t, t)$:

# %%
show.show_source(colour_code.mix_weights)

# %%
show.show_source(colour_code.mix_codes)

# %% [markdown]
# With weights $(1, 0)$ the code *is* the first reference's code, bit for bit, so `mix=0` and `mix=1`
# reproduce the single-reference translations exactly:

# %%
a, b = study.extreme_references(test_set)
x0 = test_set.x[:1]
single = histgan.translate(x0, test_set.ref[a], model, reference_mask=test_set.ref_mask[a, 0],
                           input_mask=test_set.x_mask[0, 0])
h_ab = model.histogram(test_set.ref[[a, b]], test_set.ref_mask[[a, b]])
bd_ab = model.backdrop(test_set.ref[[a, b]], test_set.ref_mask[[a, b]])  # what lies behind each (None: not read)
mixed = model.G(x0, code=colour_code.mix_codes(model.G, [h_ab[:1], h_ab[1:]], [1.0, 0.0],
                                               None if bd_ab is None else [bd_ab[:1], bd_ab[1:]]),
                **model.mask_kwargs(test_set.x_mask[:1])).clamp(-1, 1)
print("mix = 0 equals the first reference's translation:", torch.equal(single, mixed))
assert torch.equal(single, mixed)

# %% [markdown]
# ## 2. Morphing between a light and a dark skin
#
# The two references are the test references with the lightest and the darkest skin (mean L\* of their
# foregrounds). For each frame $t$ we measure the output's mean L\*a\*b\* over the input's mask, its
# **progress** along the segment from reference $a$'s mean to $b$'s (its projection: 0 at $a$, 1 at
# $b$), the **evenness** of the path (ΔE between consecutive frames; their coefficient of variation,
# 0 for equal steps), and, against the true target at $t$, the ΔE of eq (12) and the foreground SSIM
# of lightness that the evaluation page uses for shading.

# %%
ts = np.linspace(0.0, 1.0, frames).round(4).tolist()
morph = study.morph_study(model, test_set, list(range(min(morph_inputs, len(test_set.x)))), a, b, ts)

# %% tags=["hide-input"]
fig = study.plot_morph(morph)
plt.show()

# %% tags=["nbval-ignore-output"]
display(Markdown(study.morph_verdict(morph)))
display(Markdown(study.morph_table(morph)))

# %%
for mode in study.MODES:
    r = morph[mode]
    assert np.isfinite(r["cv"]).all() and np.isfinite(r["delta_e_gt"]).all() and (r["steps"] >= 0).all()
assert torch.equal(morph["code"]["frames"][0], morph["histogram"]["frames"][0]), "both start at E(h_a)"
print("both morphs start at reference a's translation; every measure is finite")

# %% [markdown]
# At $t = 0$ and $t = 1$ both ways give the same frames (the same codes). In between, mixing the histograms
# hands the encoder a histogram with two peaks — both skin colours at once, a kind of reference it never
# saw in training — while mixing the codes asks for a point between two codes it did see. The table says
# which of the two stays closer to the true intermediate skin and which moves more evenly, on this run.

# %% [markdown]
# ### The frames without a kernel
#
# Each frame shows, left to right: code mixing, histogram mixing and the true target at that $t$. The
# frames were computed when this page was executed, so the slider works in the static book.

# %% tags=["nbval-ignore-output"]
frame_slider(study.morph_row_frames(morph), [f"t = {t:.2f}" for t in ts],
             caption="t (0: reference a, 1: reference b); code mix | histogram mix | true target")

# %% [markdown]
# In JupyterLab, with a running kernel, this slider recomputes the code-mixed frame for any $t$:

# %% tags=["nbval-ignore-output"]
import ipywidgets as widgets

t_slider = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="t", continuous_update=False)
mode_choice = widgets.ToggleButtons(options=study.MODES, description="mixing")
frame_plot = widgets.interactive_output(study.show_morph_frame, {
    "G": widgets.fixed(model.G), "x": widgets.fixed(x0), "h_a": widgets.fixed(h_ab[:1]), "h_b": widgets.fixed(h_ab[1:]),
    "t": t_slider, "mode": mode_choice, "x_mask": widgets.fixed(test_set.x_mask[:1])})
widgets.VBox([widgets.HBox([t_slider, mode_choice]), frame_plot])

# %% [markdown]
# ## 3. Inversion: refining the code
#
# The code of a reference is a good start, not the best code for this input: the network maps codes to
# colours imperfectly, and differently for different inputs. Refinement minimises, over the code $c_n$
# of each pair $n$ alone, eq (6) between the histogram of $G(x_n, c_n)$ over the input's mask and the
# reference's, plus $\lambda_\text{lab}$ times the ΔE of eq (12) between their mean colours (through a
# differentiable sRGB → L\*a\*b\* conversion):

# %%
show.show_source(colour_code.per_image_loss)

# %%
show.show_source(colour_difference.lab_from_unit_rgb)

# %%
show.show_source(colour_code.refine_codes)

# %% [markdown]
# All pairs are refined in one batch. Each pair's loss depends on its own code only, so the gradient of
# the summed loss with respect to $c_n$ is the gradient of pair $n$'s term; Adam's update of every
# element uses that element's gradient history alone. A batch therefore takes the same steps as its
# pairs one by one, up to rounding: the network rounds a batch of two differently from a batch of one
# (in the last bits of float32), and Adam divides each element's step by the size of its own gradient,
# so an element whose gradient is as small as that rounding difference takes a step that the rounding
# decides. The codes of a barely trained network can therefore differ after a few steps in their second
# or third decimal on one CPU and not on another; what the refinement is for — each pair's loss, step by
# step — agrees. Checked here on two pairs (and, for the codes, in the package's tests):

# %%
h2 = model.histogram(test_set.ref[:2], test_set.ref_mask[:2])
c2 = model.G.encode(h2).detach()
together = colour_code.refine_codes(model.G, test_set.x[:2], c2, h2, 5, x_mask=test_set.x_mask[:2], bins=model.config.bins)
alone = colour_code.refine_codes(model.G, test_set.x[1:2], c2[1:], h2[1:], 5, x_mask=test_set.x_mask[1:2],
                                 bins=model.config.bins)
same = bool(torch.allclose(together.losses[:, 1], alone.losses[:, 0], rtol=1e-3, atol=1e-6))
print("the second pair's losses, step by step, batched and alone agree to 0.1 %:", same)
assert same

# %% [markdown]
# Now the test pairs: one refinement path, measured after each of the step counts in `refine_steps`.

# %%
pairs = study.sample_pairs(len(test_set.x), len(test_set.ref), refine_pairs, seed)
refined = study.refinement_study(model, test_set, pairs, record=refine_steps)

# %% tags=["hide-input"]
fig = study.plot_refinement(refined)
plt.show()

# %% tags=["nbval-ignore-output"]
display(Markdown(study.refinement_table(refined)))
print(f"{len(pairs)} pairs, {refined['seconds_per_image']:.1f} s per image for {max(refine_steps)} steps on {device}")
display(Markdown(study.refinement_verdict(refined)))

# %%
first, last = refined["rows"][0], refined["rows"][-1]
assert last["delta_e"] < first["delta_e"], "refinement lowers the mean colour difference"
assert refined["losses"][-1].mean() < refined["losses"][0].mean(), "and the loss it minimises"
print("refinement lowered the mean ΔE and the loss:", last["delta_e"] < first["delta_e"])

# %% [markdown]
# Nothing the network learned changes: its weights stay fixed and only the pair's code moves, so shading
# comes from the same decoder as before. The price is time — every step is one forward and one backward
# pass through the generator, for each image.

# %% [markdown]
# The same refinement is one option away in the package and the command line — towards a reference
# image, a colour or a histogram:
#
# ```python
# histgan.translate(x, [ref_a, ref_b], run, mix=0.3)            # morph
# histgan.translate(x, ref, run, refine=200)                     # invert to the reference's colour
# ```
# ```bash
# python -m histgan translate --checkpoint RUN --input x.png --reference a.png --reference b.png --mix 0.3 --out o.png
# python -m histgan translate --checkpoint RUN --input x.png --color "#a07e56" --refine 200 --out o.png
# ```

# %% [markdown]
# ## Edit directions in code space
#
# Morphing moves a code towards another reference's code. An *edit* moves it in a direction a reader can
# name: lighter or darker skin (along the Monk scale, {cite}`monk2019skin`), redder, more yellow. We ask
# for a change of the output's mean foreground colour in CIE L\*a\*b\* units — `lightness` is L\*,
# `redness` a\*, `yellowness` b\* — and look for a code change that delivers it. Two kinds of direction,
# from the literature on editing a generator's latent space:
#
# * **Linear** ({cite:t}`voynov2020unsupervised` find such directions without labels; here we have
#   labels). Encode the training references and regress their codes on their mean L\*, a\*, b\* *together*:
#
#   $$ z - \bar z \approx (A - \bar A)\, W, \qquad W \in \mathbb{R}^{3 \times D}. $$
#
#   Row $w_k$ of $W$ is the code change per unit of attribute $k$ **with the other two held fixed**. The
#   alternative, regressing the codes on lightness alone, answers another question: on the Monk scale a
#   darker skin is also redder and yellower, and that direction would carry the redness and yellowness that
#   come with darkness. The edit is $z + \sum_k t_k w_k$, a sum, so two edits commute.
# * **An RBF field** ({cite:t}`tzelepis2021warpedganspace`): per attribute,
#   $f_k(z) = b_k + \sum_i \alpha_{ki} \exp(-\gamma_k \lVert z - s_i \rVert^2)$ predicts the attribute from the
#   code, and the edit walks uphill on $f_k$ until the prediction has changed by $t_k$. The path curves, and
#   edits along curved paths need not commute — {cite:t}`aoshima2023decurved` compare methods by exactly
#   that, and we copy the layout of their comparison.
#
# The training references alone vary little in redness at a given lightness, so each is used with four
# copies whose foreground is shifted in L\*, a\*, b\* (uniformly within ±15, ±6, ±8): the attributes then
# vary independently and the regression can tell them apart.

# %%
from histgan.eval import edit_measures
from histgan import edit_fitting, edits

show.show_source(edit_fitting.fit_linear)

# %% [markdown]
# The field's centres $s_i$ are 64 of the references' codes spread by farthest-point sampling; the width
# $\gamma_k$ and a ridge penalty on $\alpha$ are chosen on a grid by leave-one-out error with the
# one-standard-error rule ({cite:t}`hastie2009elements`, §7.10): the smoothest field that predicts about as
# well as the best. Its gradient is analytic (tested against autograd and finite differences in float64):
#
# $$ \nabla f_k(z) = \sum_i \alpha_{ki}\, e^{-\gamma_k \lVert z - s_i\rVert^2}\, (-2\gamma_k)(z - s_i). $$
#
# The references' codes fill only part of the code space, and a field fitted to them is steepest across
# the directions where no reference constrains it: the plain gradient points largely away from the codes
# the generator was trained on, and the generator ignores such moves. So the walk is steepest ascent in
# the metric of the codes' covariance $\Sigma$, $\Delta z \propto \Sigma \nabla f_k$, with the other two
# attributes' predictions held where they started:

# %%
show.show_source(edits._rbf_walk)

# %%
directions = edits.fit_directions(model, data)  # not saved into the run; translate --edit saves its own
n_edit = min(8, len(test_set.x), len(test_set.ref))
edit_x, edit_x_mask = test_set.x[:n_edit], test_set.x_mask[:n_edit]
edit_refs = (test_set.ref[:n_edit], test_set.ref_mask[:n_edit])
with torch.no_grad():
    edit_codes = model.G.encode(model.histogram(*edit_refs)).cpu()
print(f"directions fitted on {directions.n_references} references (the training set and its shifted copies); "
      f"edits measured on {n_edit} inputs, each with its own test reference")

# %% [markdown]
# Which way does the code really move when a reference gets lighter (or redder, or yellower)? Shift the
# test references' foregrounds, encode them again, and compare that code change with each direction
# (mean cosine over the references; 1: the same direction):

# %% tags=["nbval-ignore-output"]
alignment = {a: edit_measures.direction_alignment(model, directions, *edit_refs, a, 10.0 if a == "lightness" else 4.0)
             for a in edits.ATTRIBUTES}
display(Markdown(edit_measures.alignment_table(alignment, directions)))

# %% tags=["hide-input"]
edit_amounts = {"lightness": [-20, -10, 0, 10, 20], "redness": [-8, -4, 0, 4, 8], "yellowness": [-8, -4, 0, 4, 8]}
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
for ax, method in zip(axes, edits.METHODS):
    grid = edit_measures.edit_grid(model, directions, edit_x[:1], edit_codes[:1], edit_amounts, method,
                                   x_mask=edit_x_mask[:1])
    img = images.image_grid(grid)
    ax.imshow(img)
    ax.set_title(f"{method} edits")
    ax.set_yticks([(i + 0.5) * img.shape[0] / 3 for i in range(3)], list(edit_amounts))
    ax.set_xticks([(j + 0.5) * img.shape[1] / 5 for j in range(5)], ["−2s", "−s", "0", "+s", "+2s"])
    ax.set_xlabel("requested change; s = 10 L*, or 4 a*, b*")
plt.tight_layout()
plt.show()

# %% [markdown]
# **Accuracy and side effects.** For each requested change $t$ we translate every input with its edited
# code and measure the output's mean foreground L\*a\*b\* against the unedited output: the slope of the
# achieved on the requested change (1 is exact), its R², and the slopes of the other two channels (side
# effects; 0 is clean). The last rows are a yardstick: the same measurement when the *reference* itself is
# shifted by $t$ before it is encoded — what the generator does with a reference that really is lighter.

# %% tags=["nbval-ignore-output"]
edit_rows = edit_measures.accuracy(model, directions, edit_x, edit_x_mask, edit_codes,
                                   {"lightness": [-10, -5, 0, 5, 10], "redness": [-4, 0, 4],
                                    "yellowness": [-4, 0, 4]}, references=edit_refs)
display(Markdown(edit_measures.accuracy_table(edit_rows)))

# %% [markdown]
# **Commutativity.** Edit A then B, and B then A: the cells give the mean ΔE (eq (12)) between the two
# outputs' mean colours and the gap between the two codes relative to the length of the edit (0 / 0: they
# commute), in the layout of {cite:t}`aoshima2023decurved`'s comparison.

# %% tags=["nbval-ignore-output"]
edit_comm = edit_measures.commutativity(model, directions, edit_x, edit_codes, edit_x_mask,
                                        {"lightness": 10.0, "redness": 4.0, "yellowness": 4.0})
display(Markdown(edit_measures.commutativity_table(edit_comm)))
display(Markdown(edit_measures.describe(edit_rows, edit_comm)))

# %%
linear_gap = max(r["code_gap"] for r in edit_comm if r["method"] == "linear")
assert linear_gap < 1e-5, linear_gap  # z + a + b and z + b + a differ only by rounding
assert max(r["delta_e"] for r in edit_comm if r["method"] == "linear") < 0.01
assert all(0.0 <= r["delta_e"] < 25.0 for r in edit_comm)
assert all(abs(r["slope"]) < 3.0 for r in edit_rows)
if model.step >= 500:  # a trained generator (the main job's); the quick run follows no code yet
    lin = {r["attribute"]: r for r in edit_rows if r["method"] == "linear"}
    assert lin["lightness"]["slope"] > 0.3 and lin["lightness"]["r2"] > 0.5, lin["lightness"]
    assert max(r["delta_e"] for r in edit_comm if r["method"] == "rbf") > linear_gap
    light = alignment["lightness"]
    assert light["rbf gradient, covariance metric"] > light["rbf gradient"], light
