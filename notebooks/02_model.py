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
# # Building the model
#
# *Paper: {cite:t}`kobayashi-wada-colour-constraint`, §3.1 (network structure) and §3.3 (the generator given colour information), Fig. 1–2;
# background: the survey of {cite:t}`yanai2017survey` (CNNs that output images: encoder–decoders with a conditioning input).*
#
# The method is a CycleGAN {cite:p}`zhu2017cyclegan` — two generators $G: X \to Y$ and $F: Y \to X$,
# two discriminators $D_X$ and $D_Y$ — with one change: a generator also takes the **colour histogram of a
# reference image**, turns it into a short vector (the *colour code*) and injects that code into its
# middle layer. This page builds the networks from the package, one part at a time: the encoder–decoder,
# the colour code and where it enters, the PatchGAN discriminator, spectral normalisation, the four
# models the paper compares, and the table that maps the paper's symbols to the code.
#
# Nothing is trained here; every network is freshly initialised, so the checks are about structure.

# %% tags=["parameters"]
preset = "cpu"  # the TrainConfig preset whose network sizes are shown (the main job's)
batch = 2  # images in the demonstration batches
seed = 0  # seeds torch for the random weights and images on this page

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import histgan
from histgan import config as cfg
from histgan import histogram, images
from histgan.book import show
from histgan.data import render, sampling
from histgan.networks import conditioning, discriminator, generator, spectral_norm

torch.manual_seed(seed)
config = histgan.make_config(preset)
size = config.image_size
print(f"preset {preset!r}: {size}² images, ngf = {config.ngf}, ndf = {config.ndf}, "
      f"{config.n_down} downsamplings, {config.n_blocks} residual blocks, K = {config.bins}, D = {config.code_dim}")

# %% [markdown]
# Knees from the synthetic benchmark make the demonstration batches: inputs $x$ from the grey "simulator"
# domain $X$, references $y$ from the skin-toned "photograph" domain $Y$ with their foreground masks
# (the renderer and the random shapes and appearances are the data module's).

# %% tags=["hide-input"]
rng = np.random.default_rng(seed)
shapes = [sampling.sample_shape(rng) for _ in range(2 * batch)]
x = torch.stack([torch.from_numpy(render.render_x(s, size)) for s in shapes[:batch]])
y = torch.stack([torch.from_numpy(render.render_y(s, sampling.sample_appearance(rng), size)) for s in shapes[batch:]])
x, y = (t.permute(0, 3, 1, 2).float() / 127.5 - 1 for t in (x, y))  # uint8 (N, H, W, 3) → (N, 3, H, W) in [-1, 1]
y_mask = torch.stack([torch.from_numpy(render.geometry(s, size).mask) for s in shapes[batch:]]).unsqueeze(1).float()
plt.imshow(images.image_grid([list(x), list(y), list(y_mask)]))
plt.axis("off")
plt.title("inputs x ∈ X; references y ∈ Y; the references' masks", fontsize=9)
assert x.shape == y.shape == (batch, 3, size, size) and float(x.min()) >= -1 and float(x.max()) <= 1

# %% [markdown]
# ## 1. The generator is an encoder–decoder
#
# Yanai and Shimoda's survey of image-producing networks {cite:p}`yanai2017survey` sorts them into
# encoders (images → vectors), decoders (vectors → images, as in DCGAN) and **encoder–decoders**
# (images → images: SegNet, U-Net, pix2pix, style transfer). A CycleGAN
# generator is the last kind: stride-2 convolutions shrink the image to a feature map $2^{n}$ times
# smaller (the *middle layer*), residual blocks transform it there, and upsampling convolutions bring it
# back to full size. Unlike U-Net it has no skip connections from encoder to decoder — everything the
# output knows about the input passes through the middle layer, which is why the paper puts the colour
# information *there*.
#
# The package's `Generator` (the colour-code parts are explained in section 2):

# %%
show.show_source(generator.Generator)

# %% [markdown]
# Following one batch through the three stages (the encoder and the decoder are the `down` and `up`
# parts; the middle layer has `ngf · 2^n_down` channels at `1/2^n_down` of the resolution):

# %%
G_plain = generator.Generator(config.ngf, config.n_down, config.n_blocks, code_dim=0).eval()
with torch.no_grad():
    middle = G_plain.down(x)  # the encoder's output: the middle layer
    out = G_plain(x)
print(f"input {tuple(x.shape)} → middle layer {tuple(middle.shape)} → output {tuple(out.shape)}")
assert middle.shape == (batch, config.ngf * 2**config.n_down, size // config.stride, size // config.stride)
assert out.shape == x.shape and float(out.abs().max()) < 1, "tanh output in (-1, 1), same size as the input"

# %% [markdown]
# ## 2. The colour code and where it enters
#
# The reference's colour histogram $h_\text{ref} \in \mathbb{R}^{3 \times K}$ (eq (5) of the histogram
# page, over the reference's foreground) goes through fully-connected layers — the "FC" of the paper's
# Fig. 2 — and becomes a colour code of length $D$ (equations numbered M1–M4 are this book's; plain numbers
# are the paper's):
#
# $$
# c = E(h_\text{ref}) \in \mathbb{R}^{D} \tag{M1}
# $$

# %%
show.show_source(conditioning.HistogramEncoder)

# %% [markdown]
# The `cpu` and `paper` presets extend the code with six numbers that are computed, not learnt
# (`code_moments=True`): each channel's mean and standard deviation of the reference histogram over the
# bin centres $\mu_k$,
#
# $$
# m_c = \frac{\sum_k h_{c,k}\, \mu_k}{\sum_k h_{c,k}}, \qquad
# s_c = \sqrt{\frac{\sum_k h_{c,k}\, (\mu_k - m_c)^2}{\sum_k h_{c,k}}}, \qquad
# c = \big[\,E(h_\text{ref});\ m;\ s\,\big] \in \mathbb{R}^{D + 6} \tag{M1b}
# $$
#
# so that the reference's mean colour reaches the generator exactly, whatever the encoder has learnt (the
# training page measured why: the learnt code alone carried only about half of the references' chroma).
# With `colour_head=True` a last FiLM layer (eq (M3) below) scales and shifts the output's R, G and B
# just before the tanh: the code's one direct lever on the output's colour.

# %%
show.show_source(conditioning.histogram_moments)

# %% [markdown]
# The histogram describes the reference's skin and nothing else, so a generator conditioned on it alone
# gives every output the same backdrop, whatever the reference photograph stood on. With
# `backdrop_code` set (`"middle"`, `"decoder"`, `"everywhere"` or `"gated"`; the `cpu` and `paper` presets take
# `"gated"`) the code ends with seven more computed numbers: the mean
# $\bar b_c$ and standard deviation $\sigma_c$ of each channel over the reference's *background* pixels
# $\mathcal{B}$ (those outside its mask), and a 1 that says a background was given,
#
# $$
# \bar b_c = \frac{1}{|\mathcal{B}|} \sum_{p \in \mathcal{B}} r_c(p), \qquad
# \sigma_c = \sqrt{\frac{1}{|\mathcal{B}|} \sum_{p \in \mathcal{B}} \big(r_c(p) - \bar b_c\big)^2}, \qquad
# c = \big[\,E(h_\text{ref});\ m;\ s;\ \bar b;\ \sigma;\ 1\,\big] \in \mathbb{R}^{D + 13} \tag{M1c}
# $$
#
# (seven zeros when the reference comes without a mask or a background; training zeroes them for a fifth
# of the samples, so that the generator also has a backdrop of its own for such references). With
# `"middle"` only the middle layer reads them — the injection convolution of eq (M2) below, or AdaIN's
# residual blocks — where the features still know which pixels are background (but see below:
# what the injection convolution adds is mostly cancelled by the normalisation after it); the decoder's FiLM layers
# and the colour head, which scale whole channels, skin and backdrop alike, read the colour part
# $[E(h_\text{ref}); m; s]$ alone; with `"decoder"` the decoder's FiLM layers read them too and only the
# colour head, which shifts the output's R, G and B everywhere at once, does not; with `"everywhere"`
# every layer does. `"gated"` keeps the decoder's FiLM layers on the colour part, as `"middle"` does, and
# gives every decoder level a modulation by the seven numbers $d = [\bar b; \sigma; 1]$ of its own, applied
# only where a per-pixel gate $g$, computed from the level's features $f$ by a $1 \times 1$ convolution,
# opens:
#
# $$
# f \leftarrow \big(1 + \gamma(c)\big) \odot f + \beta(c) \;+\; g \odot \big(\gamma_b(d) \odot f + \beta_b(d)\big),
# \qquad g = \operatorname{sigmoid}(w_g^\top f + b_g) \tag{M1d}
# $$
#
# ($\gamma_b$, $\beta_b$ start at zero, like every FiLM here), so that the backdrop can reach the background
# without shifting the skin's channels with it. The training page measures all four.
#
# **The input's mask.** With `mask_input=True` (the `cpu` and `paper` presets) both generators read their
# input's foreground mask $m \in \{0, 1\}^{H \times W}$ as a fourth input channel, $[x;\ 2m - 1]$, and every
# call in training gets the mask of the image it translates: $G(x, m_x)$, and in the cycle of eq (10)
# $F(G(x, m_x), m_x)$, since a translation keeps its input's silhouette. Two things follow. The render's
# black background and its darkest, shaded skin are told apart by the mask, not by a grey level they share.
# And $F$ learns the silhouette from the mask rather than from $G$'s output, so $G$ need not mark the edge
# in its output for the cycle's sake. That is our reading of the thin bright, coloured rims a generator
# without the mask paints along the limbs where skin and backdrop are alike; the training page measures
# what the mask changes. The price: every translation needs the input's mask (`translate(...,
# input_mask=...)`, which otherwise takes the input's alpha channel or the masker's prediction).

# %%
show.show_source(conditioning.backdrop_descriptor)

# %% [markdown]
# The paper says only that the colour feature is injected into the generator's **middle layer**. The
# package offers two ways, and the network uses both unless told otherwise (`injection="concat+film"`; the
# reason is in the docstring above: the decoder's instance normalisations can wash out a code that enters
# only once). The `cpu` and `paper` presets use FiLM alone (`injection="film"`), for the reason the end of
# this section shows.
#
# *Concatenation* — the code is tiled over the $h \times w$ middle feature map $f$, concatenated along the
# channels, and a 3×3 convolution maps back to the middle width:
#
# $$
# f' = \mathrm{ReLU}\Big(\mathrm{norm}\big(\mathrm{conv}_{3\times3}\,[\,f\,;\ \mathrm{tile}_{h \times w}(c)\,]\big)\Big) \tag{M2}
# $$
#
# *FiLM* (Perez et al. 2018) — after each decoder normalisation, a per-channel scale and shift
# computed from the code:
#
# $$
# f' = \big(1 + \gamma(c)\big) \odot f + \beta(c), \qquad [\gamma(c);\ \beta(c)] = W c + b \tag{M3}
# $$
#
# FiLM is the conditional cousin of the "style" half of fast arbitrary style transfer in the survey of Yanai and Shimoda: there
# a style encoder sets the channel mean and variance of normalised feature maps; here the colour code
# does. A third option, `injection="adain"`, takes that mechanism all the way: eq (M3) after *every*
# instance normalisation of the residual blocks and of the decoder, adaptive instance normalisation
# {cite:p}`huang2017adain`, and no concatenation. The generator's other option is its shape:
# `generator="unet"` adds U-Net skip connections {cite:p}`ronneberger2015unet` as pix2pix does
# {cite:p}`isola2017pix2pix`: each decoder level concatenates the encoder's feature map of its resolution
# before its normalisation and FiLM. The training page measures every option.

# %%
show.show_source(conditioning.FiLM)

# %% [markdown]
# Two checks of what these equations imply for a freshly initialised generator. FiLM's projection starts
# at zero, so $\gamma = \beta = 0$ and eq (M3) is the identity: a FiLM-only generator ignores the
# reference until training moves the projection. Concatenation acts from the first step: two different
# references give two different outputs.

# %% tags=["nbval-ignore-output"]
h_ref = histogram.soft_histogram(y, config.bins, mask=y_mask)  # (N, 3, K), background excluded
h_swapped = h_ref.flip(0)  # the same references, given to the other input
outputs = {}
for injection in cfg.INJECTIONS:
    torch.manual_seed(seed)
    G = generator.Generator(config.ngf, config.n_down, config.n_blocks, config.code_dim, config.bins,
                           injection, arch=config.generator).eval()
    with torch.no_grad():
        code = G.encode(h_ref)
        outputs[injection] = (G(x, h_ref), G(x, h_swapped))
    change = float((outputs[injection][0] - outputs[injection][1]).abs().max())
    print(f"{injection:12s} code {tuple(code.shape)}; max |G(x, h₁) − G(x, h₂)| = {change:.2e}")
assert code.shape == (batch, config.code_dim)
assert torch.equal(*outputs["film"]), "FiLM starts as the identity: the reference has no effect yet"
assert torch.equal(*outputs["adain"]), "so does AdaIN: its projections start at zero too"
assert not torch.allclose(*outputs["concat"]), "concatenation makes the output depend on the reference"

# %% [markdown]
# *Where* does concatenation act? In eq (M2) the convolution's part that comes from the code,
# $\mathrm{conv}_{3\times3}\,\mathrm{tile}(c)$, is the same number at every pixel of a channel — except on
# the one-pixel border, where zero padding drops some of the kernel's taps. The instance normalisation that
# follows subtracts each channel's mean over the map, so it removes that constant: the code survives only
# on the border, and reaches the rest of the image through what the following convolutions carry inward
# from there. With reflection padding the border is no exception, and the reference has no effect at all
# (the outputs differ only by rounding):

# %%
for padding in cfg.PADDINGS:
    torch.manual_seed(seed)
    G = generator.Generator(config.ngf, config.n_down, config.n_blocks, config.code_dim, config.bins, "concat",
                            arch=config.generator, padding=padding).eval()
    with torch.no_grad():
        change = float((G(x, h_ref) - G(x, h_swapped)).abs().max())
    print(f"concat, {padding} padding: the reference changes the output by {'more' if change > 1e-4 else 'less'} "
          "than 1e-4")
    assert (change > 1e-4) == (padding == "zeros"), "the code reaches the output only through the zero border"

# %% [markdown]
# So concatenation at the middle layer is a weak lever, borne by the border. Once the colour head and the
# histogram's moments carry the code too, the training page's ablation finds it adds nothing a second seed
# does not (mean ΔE 2.93 and 3.17 with it, 3.02 and 3.06 without, two seeds each), while its convolution
# costs 2–15 % of a training step (six measurements on our 2-core machine): the presets leave it out. The `"middle"` backdrop reading above is
# the same path, which is why the training page finds that it does not paint the backdrop.

# %% [markdown]
# ## 3. The discriminator: PatchGAN
#
# $D_X$ and $D_Y$ do not output one real/fake probability per image but one **logit per overlapping
# patch** (the PatchGAN of pix2pix, Isola et al. 2017): a fully convolutional stack whose every output
# sees a fixed receptive field. The adversarial loss (eq (9)) averages over the patches, so the
# discriminator judges local texture and colour, and the cycle losses keep the global layout.

# %%
show.show_source(discriminator.Discriminator)

# %% [markdown]
# The receptive field of one output logit follows from the kernel sizes $k_i$ and strides $s_i$ of the
# convolutions, from the last layer back: $r \leftarrow r\,s_i + (k_i - s_i)$, starting at $r = 1$. The
# docstring promises 34×34 for two stride-2 layers (our 64² images) and the classic 70×70 for three (the
# paper's 256²):

# %%
fields = {}
for d_layers in (2, 3):
    D = discriminator.Discriminator(config.ndf, d_layers)
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    r = 1
    for conv in reversed(convs):
        r = r * conv.stride[0] + conv.kernel_size[0] - conv.stride[0]
    with torch.no_grad():
        logits = D(torch.zeros(1, 3, 256, 256))
    fields[d_layers] = r
    print(f"d_layers = {d_layers}: receptive field {r}×{r}; a 256² image gives {tuple(logits.shape[-2:])} patch logits")
with torch.no_grad():
    patch_logits = discriminator.Discriminator(config.ndf, config.d_layers)(y)
print(f"preset {preset!r} (d_layers = {config.d_layers}): D_Y(y) has shape {tuple(patch_logits.shape)}")
assert fields == {2: 34, 3: 70}
assert patch_logits.shape[:2] == (batch, 1) and patch_logits.shape[-1] > 1, "one logit per patch"

# %% [markdown]
# ## 4. Spectral normalisation
#
# GAN training is unstable when the discriminator can change its output arbitrarily fast. Spectral
# normalisation {cite:p}`miyato2018spectral` bounds each layer's gain: every weight $W$ (a convolution's
# kernel reshaped to a matrix of `out_channels` rows) is used divided by its largest singular value,
#
# $$
# \bar W = \frac{W}{\sigma(W)}, \qquad \sigma(W) = \max_{\|v\|_2 = 1} \|W v\|_2 , \tag{M4}
# $$
#
# so $\sigma(\bar W) = 1$ and the network is (up to the approximation of reshaping a convolution into a
# matrix) 1-Lipschitz per layer. $\sigma(W)$ is estimated by power iteration — one step per training
# forward pass, 15 when the layer is wrapped. A training step calls each generator several times with the
# same weights, so `histgan.train.step.train_step` computes $\bar W$ once per update and reuses it: one power
# iteration per update, as in Miyato et al.'s algorithm. The paper applies spectral normalisation to the
# generators and the discriminators; so does the package, with PyTorch's parametrisation:

# %%
show.show_source(spectral_norm.apply_spectral_norm)

# %% [markdown]
# Measured on the discriminators of the plain CycleGAN and of CycleGAN + SN (same seed, so the raw
# weights are equal): the largest singular value of every reshaped weight, computed exactly by
# `torch.linalg.matrix_norm(ord=2)`.

# %%
sigma = {}
for variant in ("cyclegan", "cyclegan_sn"):
    torch.manual_seed(seed)
    D_y = generator.build_models(config.replace(variant=variant))["D_y"].eval()
    convs = [m for m in D_y.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        sigma[variant] = [float(torch.linalg.matrix_norm(m.weight.flatten(1), ord=2)) for m in convs]
shapes = [tuple(m.weight.shape) for m in convs]
print("layer  weight shape        σ(W) plain   σ(W̄) with SN")
for i, (shape, plain, sn) in enumerate(zip(shapes, sigma["cyclegan"], sigma["cyclegan_sn"])):
    print(f"{i:5d}  {str(shape):18s} {plain:10.3f} {sn:12.3f}")
assert max(abs(s - 1) for s in sigma["cyclegan_sn"]) < 0.05, "eq (M4): σ(W̄) ≈ 1 after 15 power iterations"
assert max(sigma["cyclegan"]) < 0.95, "without SN the gains are whatever the N(0, 0.02) init gives"

fig, ax = plt.subplots(figsize=(6, 3))
positions = np.arange(len(shapes))
ax.bar(positions - 0.2, sigma["cyclegan"], 0.4, label="plain (cyclegan)")
ax.bar(positions + 0.2, sigma["cyclegan_sn"], 0.4, label="spectral norm (cyclegan_sn)")
ax.axhline(1.0, color="k", lw=0.8, ls="--")
ax.set_xticks(positions, [f"conv {i}" for i in positions])
ax.set_ylabel("largest singular value")
ax.set_title("D_Y at initialisation")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# The estimate is not exact after initialisation: a random matrix's top two singular values are close,
# which slows power iteration. Each training-mode forward pass performs one more step; watch the largest
# deviation from 1 shrink:

# %%
D_y.train()
deviation = []
for step in range(30):
    with torch.no_grad():
        D_y(y)  # one power-iteration step per layer (training mode)
        deviation.append(max(abs(float(torch.linalg.matrix_norm(m.weight.flatten(1), ord=2)) - 1) for m in convs))
print(f"max |σ(W̄) − 1|: after init {max(abs(s - 1) for s in sigma['cyclegan_sn']):.3f}; "
      f"below 0.001 after 30 forward passes: {deviation[-1] < 1e-3}")
assert deviation[-1] < max(abs(s - 1) for s in sigma["cyclegan_sn"]), "power iteration converges"
fig, ax = plt.subplots(figsize=(5, 2.5))
ax.semilogy(np.arange(1, 31), deviation, "o-", ms=3)
ax.set_xlabel("training forward passes")
ax.set_ylabel(r"max $|\sigma(\bar W) - 1|$")
fig.tight_layout()

# %% [markdown]
# ## 5. The four models
#
# The paper's Table 2 compares four models. They differ only in two switches — spectral normalisation and
# which generators take a colour code — which the configuration derives from the variant's name:

# %%
show.show_source(cfg.TrainConfig.spectral_norm.fget)

# %%
show.show_source(cfg.TrainConfig.condition_G.fget)

# %%
show.show_source(cfg.TrainConfig.condition_F.fget)

# %% [markdown]
# `build_models` makes the four networks of a variant (and the weights' initialisation, CycleGAN's
# $\mathcal{N}(0, 0.02)$):

# %%
show.show_source(generator.build_models)

# %% [markdown]
# Parameter counts for the preset above. Spectral normalisation adds no parameters (it reparametrises
# $W$; its power-iteration vectors are buffers), and a colour code costs the histogram encoder plus the
# injection layers, once per conditioned generator:

# %%
counts = {}
for variant in cfg.VARIANTS:
    models = generator.build_models(config.replace(variant=variant))
    counts[variant] = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
print(f"{'variant':12s} {'SN':>3s} {'G code':>7s} {'F code':>7s} {'G':>10s} {'F':>10s} {'D_x':>9s} {'D_y':>9s}")
for variant, c in counts.items():
    v = config.replace(variant=variant)
    print(f"{variant:12s} {'yes' if v.spectral_norm else 'no':>3s} {'yes' if v.condition_G else 'no':>7s} "
          f"{'yes' if v.condition_F else 'no':>7s} {c['G']:10,d} {c['F']:10,d} {c['D_x']:9,d} {c['D_y']:9,d}")
colour_cost = counts["histgan_bi"]["G"] - counts["cyclegan"]["G"]
print(f"the colour code adds {colour_cost:,d} parameters to a generator "
      f"({100 * colour_cost / counts['cyclegan']['G']:.0f}%)")
assert counts["cyclegan"] == counts["cyclegan_sn"], "SN adds no parameters"
assert counts["histgan_uni"]["G"] == counts["histgan_bi"]["G"] > counts["histgan_uni"]["F"] == counts["cyclegan"]["F"]
assert counts["histgan_bi"]["F"] == counts["histgan_bi"]["G"], "both directions: F is conditioned too"
assert len({c["D_y"] for c in counts.values()}) == 1, "the discriminators are the same in all four"

# %% [markdown]
# ## 6. Paper ↔ code
#
# The symbols of the paper and the names in the package, as the package's own docstring states them
# (the notation page of this book has the same table):

# %% tags=["nbval-ignore-output"]
show.show_doc(histgan)

# %% [markdown]
# ## Summary
#
# - A generator is a ResNet **encoder–decoder** (the third kind in the survey of Yanai and Shimoda); without skip connections its
#   middle layer carries everything, and that is where the colour code enters. The `cpu` and `paper`
#   presets add U-Net skip connections (`generator="unet"`), which the training page's ablation chose.
# - The **colour code** eq (M1) is made by fully-connected layers from the reference's masked
#   histogram and enters by **concatenation** eq (M2) at the middle layer and by **FiLM**
#   eq (M3) in the decoder; FiLM starts as the identity, concatenation acts at once — but only through
#   the zero-padded border, since the normalisation after it removes a constant. The presets use FiLM
#   alone.
# - The discriminators are **PatchGANs** with a 34×34 (64²) or 70×70 (256²) receptive field.
# - **Spectral normalisation** eq (M4) brings every layer's largest singular value to ≈ 1 at no
#   parameter cost; its power-iteration estimate sharpens during training.
# - The **four models** differ in two switches; the colour code costs each conditioned generator about a
#   seventh more parameters (15 % at the `cpu` preset).
#
# Next: training them.
