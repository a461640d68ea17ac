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
# # Background: a GAN's latent space
#
# *Background: the survey of {cite:t}`yanai2017survey` (CNNs that output images: the decoder, DCGAN);
# {cite:t}`radford2016dcgan` (DCGAN, latent vector arithmetic); {cite:t}`yabumoto-gan-painting`
# (generation, morphing between a start set and an end set, inversion of a given image).*
#
# The method of this book is an encoder–decoder with a conditioning input. Its second half — a
# **decoder**, a network that turns a short vector into an image — is the subject of this page, alone:
# a DCGAN that learns to draw the benchmark's photographic knees from a random vector $z$. Once trained,
# its input space is a map of knees. The painting study uses such a map three ways, and this page
# repeats each on knees, with one advantage over paintings: the benchmark can render the *true* knee at
# any skin tone, so every claim is measured.
#
# 1. **generation** — sample $z \sim \mathcal N(0, I)$ and look;
# 2. **inversion** — find the $z$ of a given (held-out) photograph by gradient descent;
# 3. **morphing** — invert a start set (the lightest skins) and an end set (the darkest), average
#    each set's latents, walk from one mean to the other, and compare each frame with the true knee of
#    the intermediate tone;
# 4. **latent arithmetic** — dark bent − dark straight + light straight: does a light bent knee come out?
#
# With the default, quick parameters the GAN trains for a few steps on a handful of 32² images and the
# pictures are noise; the book shows the main job's run.

# %% tags=["parameters"]
data = None  # dataset root with trainB/, testB/ and meta.json; None: a temporary synthetic set (generated)
data_preset = "quick"  # size of the synthetic set generated when `data` is missing (histgan.data.synthetic.PRESETS)
run_dir = None  # the DCGAN's run folder (resumed or reused when it holds a run); None: temporary
steps = 4  # DCGAN training steps
size = 32  # image side the DCGAN learns (a power of two)
batch_size = 4  # images per training step
invert_steps = 20  # Adam steps of every inversion
restarts = 2  # random starts per inverted image
set_size = 2  # images in each start, end and arithmetic set
n_test = 3  # held-out testB images inverted
seed = 0  # seeds training, sampling and the inversions' starts

# %%
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import histgan
from histgan import colour_difference, images
from histgan.book import show
from histgan.data import synthetic
from histgan.data.folders import load_domain
from histgan.eval import latent
from histgan.train import dcgan

torch.manual_seed(seed)
work = Path(tempfile.mkdtemp(prefix="histgan-latent-"))
data = Path(data) if data is not None else work / "data"
if not (data / "trainB").is_dir():
    p = synthetic.PRESETS[data_preset]
    histgan.write_dataset(data, size=p.size, n_train=p.n_train, n_test=p.n_test, progress=False)
run_dir = Path(run_dir) if run_dir is not None else work / "dcgan"
print(f"{len(synthetic.load_meta(data)['images']['trainB'])} training knees (trainB)")

# %% [markdown]
# ## 1. The decoder: DCGAN
#
# The generator $G$ starts from $z$ seen as a $1 \times 1$ image with `nz` channels. A $4 \times 4$
# **transposed convolution** (a convolution run backwards: each input pixel stamps a learned
# $4 \times 4$ pattern into the output, stride 2 doubling the side) grows it to $4 \times 4$, then to
# $8 \times 8$ and on to the image size, halving the channels each time, with **batch normalisation** and
# ReLU between layers and tanh at the end. The discriminator $D$ mirrors it with strided convolutions
# and leaky ReLU. No pooling, no hidden fully connected layer: the architecture guidelines of
# {cite:t}`radford2016dcgan`, which the survey presents as the step that made GANs draw convincing images.

# %%
show.show_source(dcgan.Generator)

# %% [markdown]
# The DCGAN paper draws every weight from $\mathcal N(0, 0.02)$ (batch-norm scales from
# $\mathcal N(1, 0.02)$) and trains both networks with Adam, learning rate $2 \cdot 10^{-4}$ and
# $\beta_1 = 0.5$; the losses are the original GAN game in its non-saturating form:
#
# $$
# L_D = -\mathbb E_y[\log D(y)] - \mathbb E_z[\log(1 - D(G(z)))], \qquad L_G = -\mathbb E_z[\log D(G(z))]
# $$

# %%
show.show_source(dcgan.dcgan_init)

# %%
show.show_source(dcgan.train_step)

# %% [markdown]
# Training resumes a run folder that already holds checkpoints (and returns at once when it is finished),
# like the translator's.

# %% tags=["nbval-ignore-output"]
dcgan.fit_dcgan(data, run_dir, steps=steps, seed=seed, size=size, batch_size=batch_size, device="cpu",
                resume="auto", progress=False)
G, D, config = dcgan.load_dcgan(run_dir)
run = json.loads((run_dir / "metrics.json").read_text())
print(f"{config.steps} steps of {config.batch_size} images at {config.size}², nz = {config.nz}; "
      f"G {run['parameters']['G']:,} and D {run['parameters']['D']:,} parameters; "
      f"{run['steps_per_second']:.1f} steps/s in this run")

# %% tags=["hide-input"]
log = np.array(run["log"])
fig, axes = plt.subplots(1, 2, figsize=(10, 2.8))
axes[0].plot(log[:, 0], log[:, 1], lw=1, label="L_D")
axes[0].plot(log[:, 0], log[:, 2], lw=1, label="L_G")
axes[1].plot(log[:, 0], log[:, 3], lw=1, label="D(real)")
axes[1].plot(log[:, 0], log[:, 4], lw=1, label="D(G(z))")
for ax, title in zip(axes, ("losses", "mean probability D gives")):
    ax.set_xlabel("step")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# Samples of $G$ for sixteen random $z$ (top two rows) beside sixteen real training knees (bottom two):

# %% tags=["hide-input"]
z_samples, samples = dcgan.sample(G, 16, seed=seed)
real = load_domain(data, "trainB", config.size)[0][:16]
fig, ax = plt.subplots(figsize=(9, 4.8))
ax.imshow(images.image_grid([list(samples[:8]), list(samples[8:]), list(real[:8]), list(real[8:16])]))
ax.set_title("generated (rows 1–2) and real (rows 3–4)", fontsize=9)
ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ## 2. Inversion: the latent of a given photograph
#
# A held-out knee $y$ from `testB` was never seen in training. Its latent is found by descending
#
# $$
# z^* = \arg\min_z \frac{1}{P}\lVert G(z) - y \rVert^2 + \frac{\lambda_f}{Q}\lVert \phi(G(z)) - \phi(y) \rVert^2
# $$
#
# from several random starts, $\phi$ being the trained discriminator's last hidden maps (a feature
# term: it rewards the right *kind* of image where pixels alone would settle for a blur), $P$ and $Q$
# the numbers of values compared.

# %%
show.show_source(latent.invert)

# %% tags=["nbval-ignore-output"]
test = load_domain(data, "testB", config.size)[0][:n_test]
inv = latent.invert(G, D, test, steps=invert_steps, restarts=restarts, seed=seed)
base = float(((test - test.mean(0)) ** 2).flatten(1).mean(1).mean())
contrast = test.flatten(1).std(1)  # a photograph's contrast: the spread of its pixel values
rank = lambda v: v.argsort().argsort().double()  # noqa: E731
rho = float(torch.corrcoef(torch.stack([rank(inv.error), rank(contrast)]))[0, 1]) if len(test) > 2 else float("nan")
print(f"mean squared error of the reconstructions: median {inv.error.median():.4f}, "
      f"worst {inv.error.max():.4f} (answering with the set's mean image: {base:.4f})")
print(f"rank correlation of an image's error with its contrast: {rho:+.2f}")
assert inv.z.shape == (len(test), config.nz) and bool(torch.isfinite(inv.error).all())
assert float(inv.error.median()) < float(inv.curve[0].mean()), "descent lowered the error"

# %% tags=["hide-input"]
best_curve = inv.curve[:, inv.best, torch.arange(len(test))]
order = inv.error.argsort()
fig, axes = plt.subplots(1, 2, figsize=(11, 3), gridspec_kw={"width_ratios": [1, 1.4]})
for r in range(restarts):
    axes[0].plot(inv.curve[:, r].median(1).values, lw=1, alpha=0.6, label=f"start {r}: median over images")
axes[0].plot(best_curve.median(1).values, "k", lw=2, label="best start per image")
axes[0].set_yscale("log")
axes[0].set_xlabel("Adam step")
axes[0].set_ylabel("pixel MSE")
axes[0].legend(fontsize=7)
shown = torch.cat([order[:3], order[-3:]]) if len(order) > 6 else order
axes[1].imshow(images.image_grid([[test[i] for i in shown], [inv.images[i] for i in shown]]))
axes[1].set_title("targets (top) and G(z*) (bottom): the best three, then the worst three", fontsize=9)
axes[1].axis("off")
fig.tight_layout()

# %% [markdown]
# The failures are instructive: compare the worst three with the best. A generator of a few hundred
# steps can only produce what its latent space holds, so a reconstruction keeps the colours sooner than
# the pose. Where the photograph has high contrast (light skin on a dark backdrop), every misplaced edge
# costs most; the rank correlation printed above between an image's error and its contrast says how
# much of the failure that explains in this run (+1: the most contrasted images fail worst).
#
# ## 3. Morphing from the lightest to the darkest skin
#
# The start set is the `set_size` training knees of lightest Monk tone, the end set the darkest. Each is
# inverted and its latents averaged. A plain average is shorter than the latents it averages, and the
# generator draws a short latent as a dim, average knee, so the mean keeps its direction and takes the
# set's mean norm (`latent.set_latent`; the plain mean is measured below too). The two means
# $\bar z_0$ and $\bar z_1$ are joined by a straight line (lerp) and by the great circle (slerp), which
# keeps the norm that Gaussian latents concentrate at:

# %%
show.show_source(latent.slerp)

# %%
show.show_source(latent.set_latent)

# %% tags=["nbval-ignore-output"]
light = latent.pick(data, n=set_size)
dark = latent.pick(data, n=set_size, order="-tone")
train_images, train_masks, train_names = load_domain(data, "trainB", config.size)
trainB = {n: (x, m) for n, x, m in zip(train_names, train_images, train_masks)}
z0, inv0 = latent.set_latent(G, D, torch.stack([trainB[n][0] for n in light]), steps=invert_steps,
                             restarts=restarts, seed=seed)
z1, inv1 = latent.set_latent(G, D, torch.stack([trainB[n][0] for n in dark]), steps=invert_steps,
                             restarts=restarts, seed=seed + 1)
ts = np.linspace(0, 1, 7)
frames = {mode: G(latent.interpolate(z0, z1, ts, mode)).detach() for mode in ("lerp", "slerp")}
norms = {mode: latent.interpolate(z0, z1, ts, mode).norm(dim=1) for mode in frames}
print("‖z‖ along t:", {m: [round(float(v), 1) for v in n] for m, n in norms.items()})

# %% [markdown]
# What should frame $t$ be? The benchmark knows: start-set knee $i$ rendered with its skin moved a
# fraction $t$ of the way to end-set knee $i$'s (`histgan.data.intermediate.between`), averaged over the
# pairs — the "painting of the intermediate period" that the painting study could only judge by eye.
# A generated knee has no mask, so its colour is read in the central square of the image
# (`latent.centre_mask`). On real training knees, whose true masks are known, reading the colour there
# instead of over the whole foreground already costs some ΔE (`latent.centre_floor`, printed below):
# that is the floor of the numbers that follow.

# %%
show.show_source(latent.true_between_lab)

# %% tags=["nbval-ignore-output"]
floor = latent.centre_floor(train_images, train_masks)
print(f"central square on the {len(train_images)} training knees: {floor['skin']:.0%} skin on average "
      f"({floor['skin_min']:.0%} at worst); its colour lies ΔE {floor['delta_e']:.1f} on average "
      f"(median {floor['delta_e_median']:.1f}) from the whole foreground's")
truth = latent.true_between_lab(data, "trainB", light, dark, ts)
de = {mode: latent.morph_delta_e(f, truth) for mode, f in frames.items()}
endpoints = {"start set": latent.morph_delta_e(inv0.images, np.repeat(truth[:1], set_size, 0)).mean(),
             "end set": latent.morph_delta_e(inv1.images, np.repeat(truth[-1:], set_size, 0)).mean()}
print("t:          ", " ".join(f"{t:5.2f}" for t in ts))
for mode, d in de.items():
    print(f"ΔE {mode:8s}", " ".join(f"{v:5.1f}" for v in d), f"  mean {d.mean():.1f}")
print("true L*:    ", " ".join(f"{v:5.1f}" for v in truth[:, 0]))
print("frame L*:   ", " ".join(f"{v:5.1f}" for v in latent.centre_lab(frames["slerp"])[:, 0]))
print({k: round(float(v), 1) for k, v in endpoints.items()}, "(ΔE of the sets' own reconstructions)")
plain = latent.morph_delta_e(G(torch.stack([inv0.z.mean(0), inv1.z.mean(0)])).detach(), truth[[0, -1]])
print(f"plain means, not rescaled: ΔE {plain[0]:.1f} at t = 0 and {plain[1]:.1f} at t = 1")
assert truth[0, 0] > truth[-1, 0], "the true knees darken from start to end"
assert all(np.isfinite(d).all() and len(d) == len(ts) for d in de.values())

# %% tags=["hide-input"]
swatches = colour_difference.lab_to_rgb(torch.tensor(truth, dtype=torch.float32)[:, :, None, None], value_range=(0, 1))
swatches = [np.broadcast_to(c.permute(1, 2, 0).numpy(), (config.size, config.size, 3)) for c in swatches]
fig, axes = plt.subplots(1, 2, figsize=(12, 3.2), gridspec_kw={"width_ratios": [1.6, 1]})
axes[0].imshow(images.image_grid([list(frames["lerp"]), list(frames["slerp"]), swatches]))
axes[0].set_title("lerp (top), slerp (middle), true mean skin colour (bottom), t = 0 … 1", fontsize=9)
axes[0].axis("off")
for mode, d in de.items():
    axes[1].plot(ts, d, "o-", label=mode)
axes[1].axhline(floor["delta_e"], color="grey", ls=":", label="floor of the centre estimate")
axes[1].set_xlabel("t")
axes[1].set_ylabel("ΔE to the true intermediate tone")
axes[1].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## 4. Latent arithmetic
#
# {cite:t}`radford2016dcgan` averaged the latents of a few images per concept and added and
# subtracted the means. The benchmark's `meta.json` gives each knee's Monk tone and flexion $|\text{bend}|$,
# so the four sets are chosen exactly: the `set_size` knees nearest each corner of the (tone, flexion)
# plane (`latent.corner`: largest sum of the two ranks). If tone and bend are separate directions in $z$,
# dark bent − dark straight + light straight should draw a **light bent** knee. The lightness $L^*$ of
# the result's centre is compared with the real light and dark knees'.

# %% tags=["nbval-ignore-output"]
names = {f"{'dark' if d else 'light'} {'bent' if b else 'straight'}": latent.corner(data, dark=d, bent=b, n=set_size)
         for d, b in ((True, True), (True, False), (False, False), (False, True))}
means = {k: latent.set_latent(G, D, torch.stack([trainB[n][0] for n in v]), steps=invert_steps, restarts=restarts,
                              seed=seed)[0] for k, v in names.items()}
z_result = means["dark bent"] - means["dark straight"] + means["light straight"]
shown = {**{k: G(m[None]).detach()[0] for k, m in means.items()}, "result": G(z_result[None]).detach()[0]}
real_l = {k: float(colour_difference.mean_lab(torch.stack([trainB[n][0] for n in v]),
                                    torch.stack([trainB[n][1] for n in v]))[:, 0].mean()) for k, v in names.items()}
l_gen = {k: float(latent.centre_lab(v[None])[0, 0]) for k, v in shown.items()}
meta = synthetic.load_meta(data)["images"]["trainB"]
for k, v in names.items():
    print(f"{k:15s} {len(v)} knees, mean tone {np.mean([meta[n]['appearance']['tone'] for n in v]):.1f}, "
          f"mean |bend| {np.mean([abs(meta[n]['shape']['bend']) for n in v]):.0f}°")
print("L* of the real sets (true masks):", {k: round(v) for k, v in real_l.items()})
print("L* of G(set mean) (centre):      ", {k: round(v) for k, v in l_gen.items()})
light_l = np.mean([real_l["light straight"], real_l["light bent"]])
dark_l = np.mean([real_l["dark straight"], real_l["dark bent"]])
print(f"dark bent − dark straight + light straight: L* {l_gen['result']:.0f} "
      f"(real light knees {light_l:.0f}, real dark knees {dark_l:.0f})")
assert light_l > dark_l, "the light sets are lighter than the dark ones"

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(8, 2.2))
ax.imshow(images.image_grid([list(shown.values())]))
ax.set_title("  |  ".join(shown), fontsize=8)
ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ## What this page measured
#
# Everything above is one decoder of a few hundred CPU steps; its samples are
# blurred, and nothing here shows its latent space to be disentangled (the bend, unlike the tone, is not measured here: the centre square
# sees colour, not shape). Still, each idea of the painting study is here in working form:
# samples, inverted photographs with their failures, morphs whose colour is checked against the true
# intermediate tone along $t$, and the DCGAN's vector arithmetic measured by the attribute it should
# change. The method of this book avoids inversion altogether: its colour code is *computed* from the
# reference (a histogram and a small network), not searched for.
