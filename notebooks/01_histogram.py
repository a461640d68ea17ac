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
# # The differentiable colour histogram
#
# *Paper: {cite:t}`kobayashi-wada-colour-constraint`, §3.2 "colour-distribution constraint", eqs (1)–(5); the construction is Deephist's
# {cite:p}`avi-aharon2020deephist`.*
#
# The method asks a generator for an image whose colour histogram matches a reference's. A counting
# histogram cannot be trained against: moving a pixel a little changes no count, so its gradient is zero
# almost everywhere. This page builds the histogram the model trains with — a kernel density estimate
# integrated over each bin — one equation at a time, checks every step against the package, and ends by
# matching a histogram by gradient descent, which is exactly what the counting histogram cannot do.
#
# Everything below is computed by `histgan`; the notebook only calls it, shows its source and checks it.

# %% tags=["parameters"]
image_size = 128  # side of the photograph (and synthetic knee) in pixels
bins = 32  # K, bins per channel (the package default)
match_size = 64  # side of the image whose pixels the histogram-matching demo optimises
match_steps = 150  # gradient-descent steps of that demo
match_lr = 0.01  # Adam step size of that demo (pixel values live in [-1, 1])
seed = 0  # seeds torch for everything random on this page
knee_seed = 10  # which synthetic knee (shape, skin tone, light, background) the page shows

# %%
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

import histgan
from histgan import histogram, histogram_window, images, kernel
from histgan.book import show
from histgan.data import samples

torch.manual_seed(seed)
L = histogram.bin_width(bins)  # L = 2/K
B = histogram.default_bandwidth(bins)  # the package's default bandwidth, B = L
photo = samples.sample_photograph(image_size)  # (1, 3, H, W) in [-1, 1], from matplotlib's sample data
knee, knee_mask = samples.sample_knee(image_size, knee_seed)  # a synthetic 'real' knee and its foreground
print(f"histgan {histgan.__version__}; photograph {tuple(photo.shape)}; K = {bins}, L = B = {L:.4f}")

# %% [markdown]
# ## 1. A kernel density estimate of the pixel values
#
# Pixel values are normalised to $I(x) \in [-1, 1]$ over the image domain $\Omega$ with $N = |\Omega|$
# pixels. The density of grey levels $g$ is estimated by placing a kernel $K$ of bandwidth $B$ on every
# pixel:
#
# $$
# f_I(g) = \frac{1}{N B} \sum_{x \in \Omega} K\!\left(\frac{I(x) - g}{B}\right) \tag{1}
# $$
#
# The paper's kernel is the derivative of the logistic sigmoid $\sigma(z) = 1 / (1 + e^{-z})$:
#
# $$
# K(z) = \frac{d}{dz}\sigma(z) = \sigma(z)\,\sigma(-z) \tag{2}
# $$
#
# Why this kernel and not a Gaussian? Both are smooth, symmetric bumps of unit area. The difference is
# the *antiderivative*: the integral of eq (2) is $\sigma$ itself, a closed form that costs one
# exponential, while a Gaussian's is the error function. Section 3 shows that integrating over bins is
# all the histogram needs, so this choice makes every bin a difference of two sigmoids. The price: the
# logistic kernel has heavier tails, $e^{-|z|}$ instead of $e^{-z^2/2}$. The package defines the kernel
# and its integral once, in `histgan.kernel`:

# %%
show.show_source(kernel.Logistic)

# %% [markdown]
# Below, autograd of the package's $\sigma$ (`kernel.LOGISTIC.cdf`) confirms eq (2), and the kernel is
# compared with the Gaussian of the same variance ($\pi^2/3$).

# %%
z = torch.linspace(-12, 12, 2401, dtype=torch.float64, requires_grad=True)
(kernel_autograd,) = torch.autograd.grad(kernel.LOGISTIC.cdf(z).sum(), z)  # dσ/dz by autograd
z = z.detach()
density = kernel.LOGISTIC.density(z)  # σ(z)σ(-z), the right-hand side of eq (2)
gauss_sd = np.pi / np.sqrt(3.0)  # the logistic distribution's standard deviation
gauss = kernel.GAUSSIAN.density(z / gauss_sd) / gauss_sd  # the normal density of that standard deviation
area = float(torch.trapezoid(density, z))
variance = float(torch.trapezoid(z**2 * density, z))
print(f"∫K dz = {area:.4f};  variance = {variance:.4f}  (π²/3 = {np.pi**2 / 3:.4f})")
print(f"tail at z = 8: logistic {float(density[z == 8][0]):.2e}, Gaussian {float(gauss[z == 8][0]):.2e}")
assert torch.allclose(kernel_autograd, density, atol=1e-12), "eq (2): dσ/dz = σ(z)σ(-z)"
assert abs(area - 1.0) < 1e-4 and abs(variance - np.pi**2 / 3) < 1e-2

fig, axes = plt.subplots(1, 2, figsize=(10, 3))
for ax in axes:
    ax.plot(z, density, label=r"$K(z)=\sigma(z)\sigma(-z)$")
    ax.plot(z, gauss, "--", label=r"Gaussian, variance $\pi^2/3$")
    ax.set_xlabel("z")
axes[1].set_yscale("log")
axes[1].set_ylim(1e-6, 1)
axes[0].legend(fontsize=8)
axes[0].set_title("the kernel")
axes[1].set_title("log scale: the logistic tails are heavier")
fig.tight_layout()

# %% [markdown]
# ## 2. Bins and their edges
#
# The range $[-1, 1]$ is cut into $K$ bins of width $L = 2/K$. Bin $k$ has centre
# $\mu_k = -1 + L\,(k + \tfrac12)$ and edges $\mu_k \pm L/2$, so the $K$ bins share $K + 1$ edges
# $e_j = -1 + jL$, $j = 0 \dots K$. The package's default bandwidth is one bin width, $B = L$:

# %%
show.show_source(histogram.default_bandwidth)

# %% [markdown]
# ## 3. From a density to a histogram: integrate over each bin
#
# The mass of bin $k$ is the integral of the density over the bin:
#
# $$
# P_I(k) = \int_{\mu_k - L/2}^{\mu_k + L/2} f_I(g)\, dg = \frac{1}{N} \sum_{x \in \Omega} \Pi_k\big(I(x)\big) \tag{3}
# $$
#
# Step by step, for one pixel with value $z = I(x)$: substitute $u = (z - g)/B$, so $dg = -B\,du$, and the
# $1/B$ of eq (1) cancels. The antiderivative of $K$ is $\sigma$ by eq (2), hence
# $\frac{1}{B}\int_a^b K\big(\tfrac{z-g}{B}\big)\,dg = \sigma\big(\tfrac{z-a}{B}\big) - \sigma\big(\tfrac{z-b}{B}\big)$.
# With $a = \mu_k - L/2$ and $b = \mu_k + L/2$:
#
# $$
# \Pi_k(z) = \sigma\!\left(\frac{z - \mu_k + L/2}{B}\right) - \sigma\!\left(\frac{z - \mu_k - L/2}{B}\right) \tag{4}
# $$
#
# (The paper writes $I(x)$ inside $\Pi_k(z)$; it means the argument $z$.) $\Pi_k(z)$ is a *soft
# membership*: near 1 when $z$ is well inside bin $k$, near 0 far from it, and it slides smoothly across
# an edge. The package evaluates eq (4) for one-pixel images, so the curves below are the
# package's own numbers:

# %%
K_demo = 8  # few bins so that the curves can be told apart
values = torch.linspace(-1, 1, 801, dtype=torch.float64)
one_pixel_images = values.reshape(-1, 1, 1, 1)  # 801 images of one pixel each
fig, axes = plt.subplots(1, 2, figsize=(11, 3), sharey=True)
for ax, ratio in zip(axes, (1.0, 0.25)):
    B_demo = ratio * histogram.bin_width(K_demo)
    membership = histogram.soft_histogram(one_pixel_images, K_demo, B_demo)[:, 0, :]  # (801, K): Π_k(z)
    total = membership.sum(1)
    telescoped = kernel.LOGISTIC.cdf((values + 1) / B_demo) - kernel.LOGISTIC.cdf((values - 1) / B_demo)
    assert torch.allclose(total, telescoped, atol=1e-12), "Σ_k Π_k(z) = σ((z+1)/B) − σ((z−1)/B)"
    ax.plot(values, membership, lw=1.2)
    ax.plot(values, total, "k--", lw=1, label=r"$\sum_k \Pi_k(z)$")
    for edge in np.linspace(-1, 1, K_demo + 1):
        ax.axvline(edge, color="grey", lw=0.5)
    ax.set_title(f"K = {K_demo}, B = {ratio:g} L")
    ax.set_xlabel("pixel value z")
axes[0].set_ylabel(r"$\Pi_k(z)$")
axes[0].legend(fontsize=8, loc="center")
fig.tight_layout()

# %% [markdown]
# ### Why (4) is a difference of a soft CDF
#
# Write $S_j = \frac1N \sum_x \sigma\big((I(x) - e_j)/B\big)$: a *soft count* of the pixels above edge
# $e_j$ (the sigmoid is a smoothed step "$I(x) > e_j$"). Both terms of eq (4) are such steps at
# the two edges of bin $k$, so
#
# $$
# P_I(k) = S_k - S_{k+1},
# $$
#
# the difference of a soft (complementary) cumulative distribution at consecutive edges. Two consequences.
# First, the $K$ bins need only $K + 1$ sigmoid evaluations per pixel, not $2K$ — the package's fast
# implementation evaluates each shared edge once. Second, the sum telescopes:
# $\sum_k P_I(k) = S_0 - S_K$, which is slightly less than 1 (section 5). Here is the formula written out
# (the reference implementation), then the one the package uses:

# %%
show.show_source(histogram.soft_histogram_reference)

# %%
show.show_source(histogram_window.WindowedSoftHistogram.forward)

# %% [markdown]
# Check on the photograph: the soft CDF differenced at the edges is the histogram, and the fast
# implementation agrees with the formula written out.

# %%
h_fast = histogram.soft_histogram(photo, bins)  # (1, 3, K), float32 as in training
photo64 = photo.double()  # in float64 the two implementations agree to round-off
difference64 = histogram.soft_histogram(photo64, bins) - histogram.soft_histogram_reference(photo64, bins)
difference32 = h_fast - histogram.soft_histogram_reference(photo, bins)  # float32: summation order shows
edges = torch.linspace(-1, 1, bins + 1, dtype=torch.float64)
red = photo64[0, 0].reshape(-1, 1)  # (H·W, 1), the red channel
S = kernel.LOGISTIC.cdf((red - edges) / B).mean(0)  # (K + 1,) soft CDF at the edges
from_cdf = (-torch.diff(S) - histogram.soft_histogram(photo64, bins)[0, 0]).abs().max()
print("fast = reference within 1e-12 in float64:", float(difference64.abs().max()) < 1e-12,
      "| within 1e-4 in float32:", float(difference32.abs().max()) < 1e-4)
print("S_k − S_k+1 = P(k) within 1e-12 (red, float64):", float(from_cdf) < 1e-12)
assert float(difference64.abs().max()) < 1e-12 and float(difference32.abs().max()) < 1e-4
assert float(from_cdf) < 1e-12

# %% [markdown]
# ## 4. One histogram per channel
#
# The colour histogram of an image is eq (3) for each of the channels R, G and B:
#
# $$
# h = \{P_I(k)\}_{k=0}^{K-1} \quad \text{per channel, so } h \in \mathbb{R}^{3 \times K} \tag{5}
# $$
#
# `soft_histogram` takes a batch `(N, C, H, W)` and returns `(N, C, K)`; the notation page maps
# $h_\text{fake}$ and $h_\text{ref}$ to the code.

# %%
show.show_source(histogram.soft_histogram)

# %%
print(f"h: {tuple(h_fast.shape)}; mass per channel R, G, B:", np.round(h_fast.sum(-1)[0].numpy(), 3))
assert h_fast.shape == (1, 3, bins) and bool((h_fast >= 0).all())
fig = show.plot_soft_vs_hard(photo, bins, B, titles=["photograph"])

# %% [markdown]
# ## 5. As $B \to 0$ the soft histogram becomes the counting histogram
#
# For $B \to 0$ each sigmoid in eq (4) becomes a hard step, $\Pi_k$ becomes the indicator of bin
# $k$, and $P_I(k)$ the fraction of pixels in bin $k$ — the counting histogram, `hard_histogram`. The
# only exceptions are pixels sitting *exactly* on an edge, which the limit splits half-and-half between
# the two neighbouring bins (at $\pm1$, half of it falls beyond the range): each such pixel leaves an
# L1 distance of at most 1, so the distance tends to at most the share of those pixels. It shrinks
# steadily as $B$ does:

# %%
ratios = [4.0, 2.0, 1.0, 0.5, 0.25, 0.1, 0.03, 0.01, 0.001, 0.0001]  # B / L
h_hard = histogram.hard_histogram(photo, bins)
l1 = [float((histogram.soft_histogram(photo, bins, r * L) - h_hard).abs().sum(-1).mean()) for r in ratios]
for r, d in zip(ratios, l1):
    print(f"B = {r:>6g} L   mean L1(soft, hard) = {d:.4f}")
position = (photo + 1) / L  # pixel values in units of bins from -1
on_edge = float((position == position.round()).float().mean())  # share of pixels exactly on an edge e_j
print(f"pixels exactly on an edge: {on_edge:.3%}")
assert all(a > b - 1e-5 for a, b in zip(l1, l1[1:])), "the distance shrinks monotonically with B"
assert l1[-1] < on_edge + 1e-3, "B → 0: the counting histogram, up to the pixels split at edges"
fig, ax = plt.subplots(figsize=(5, 3))
ax.loglog(ratios, l1, "o-")
ax.set_xlabel("B / L")
ax.set_ylabel("mean L1 distance to hard")
ax.set_title("soft → hard as B → 0")
fig.tight_layout()

# %% [markdown]
# ## 6. Mass at the ±1 edges
#
# The telescoped sum $\sum_k P_I(k) = S_0 - S_K$ is the fraction of kernel mass that falls *inside*
# $[-1, 1]$. A pixel with value $z$ loses $1 - \sum_k \Pi_k(z) = \sigma\big(-\tfrac{1+z}{B}\big) +
# \sigma\big(-\tfrac{1-z}{B}\big)$: half its mass when it sits exactly at $\pm1$, and still a visible
# share within a few bandwidths of the ends (the dashed curves in section 3). Saturated highlights and
# near-black pixels count for less. That is one reason the paper excludes the background (next section),
# and one reason not to make $B$ large. The reference and the generated image are measured in the same
# way, so eq (6) compares like with like; the histograms are *not* renormalised, which would hide the
# lost mass and change eq (3).

# %%
edge_pixels = torch.tensor([-1.0, -0.95, 0.0, 0.95, 1.0], dtype=torch.float64).reshape(-1, 1, 1, 1)
lost = 1 - histogram.soft_histogram(edge_pixels, bins).sum(-1)[:, 0]
for value, loss in zip(edge_pixels.flatten().tolist(), lost.tolist()):
    print(f"pixel at {value:+.2f}: mass outside [-1, 1] = {loss:.4f}")
print("photograph, mass outside [-1, 1] per channel at B = L:", np.round(1 - h_fast.sum(-1)[0].numpy(), 3))
assert abs(lost[0] - 0.5) < 1e-6 and abs(lost[-1] - 0.5) < 1e-6 and lost[2] < 1e-6

# %% [markdown]
# ## 7. The masked form: the background does not count
#
# The generators see the histogram of the reference *with background pixels excluded* (the paper's §3.3). With
# foreground weights $m(x) \in [0, 1]$, the mean of eq (3) becomes a weighted mean:
#
# $$
# P_I(k) = \frac{\sum_{x} m(x)\, \Pi_k\big(I(x)\big)}{\sum_x m(x)}
# $$
#
# With a binary mask this is exactly the histogram of the selected pixels. Checked with a disc on the
# photograph:

# %%
yy, xx = torch.meshgrid(torch.linspace(-1, 1, image_size), torch.linspace(-1, 1, image_size), indexing="ij")
disc = ((xx**2 + yy**2) < 0.6**2).float().reshape(1, 1, image_size, image_size)
h_masked = histogram.soft_histogram(photo, bins, mask=disc)
selected = photo[:, :, disc[0, 0] > 0].reshape(1, 3, -1, 1)  # the foreground pixels as a 1-column image
h_selected = histogram.soft_histogram(selected, bins)
h_half_weights = histogram.soft_histogram(photo, bins, mask=0.5 * disc)
print(f"foreground: {int(disc.sum())} of {image_size**2} pixels;",
      "masked = histogram of the selected pixels (within 1e-5):", bool(torch.allclose(h_masked, h_selected, atol=1e-5)))
assert torch.allclose(h_masked, h_selected, atol=1e-5), "eq (3) with a binary mask = histogram of the selection"
assert torch.allclose(h_masked, h_half_weights, atol=1e-5), "only relative weights matter"
fig = show.plot_soft_vs_hard(photo, bins, B, masks=disc, titles=["photograph, disc foreground"])

# %% [markdown]
# On a synthetic knee (the benchmark's "real" domain) the background is a large share of the pixels and
# has nothing to do with skin: with it, the histogram mixes skin and backdrop; without it, it is the
# skin's alone — what the reference's colour code should describe.

# %%
knee_pixels = knee[:, :, knee_mask[0, 0] > 0].reshape(1, 3, -1, 1)
assert torch.allclose(histogram.soft_histogram(knee, bins, mask=knee_mask),
                      histogram.soft_histogram(knee_pixels, bins), atol=1e-5)
print(f"knee foreground: {float(knee_mask.mean()):.1%} of the pixels")
fig = show.plot_soft_vs_hard(torch.cat([knee, knee]), bins, B, masks=torch.cat([torch.ones_like(knee_mask), knee_mask]),
                            titles=["synthetic knee, all pixels", "background excluded (mask)"])

# %% [markdown]
# ## 8. The memory-lean backward
#
# Training computes the histogram of every generated image at every step and back-propagates through it.
# The formula written out builds a `(N, C, H·W, K)` tensor and autograd keeps it (and its sigmoids) alive
# until the backward pass: memory grows with $K$. `soft_histogram` avoids that in three ways:
#
# 1. **Shared edges** — $K + 1$ sigmoids per pixel instead of $2K$ (section 3).
# 2. **A window of edges** — each pixel visits only the $E = \min(K + 1, \lceil 2WB/L \rceil + 2)$ edges
#    around it, so with $B = L$ the work per pixel does not grow with $K$. Every edge it skips lies at
#    least $WB + L$ away, where the sigmoid is within $\sigma(-W - L/B) < e^{-W - L/B}$ of 0 or 1, and
#    those bins telescope away: per pixel at most that much in any bin and four times it over all bins.
#    With $W = \lceil \ln(1/\varepsilon)\rceil + 1$ this is below the dtype's machine epsilon
#    $\varepsilon$ (`kernel.tail` gives the $\ln(1/\varepsilon)$).
# 3. **Recompute, don't store** — the forward saves only the pixel values and weights; the backward
#    recomputes the window's sigmoids chunk by chunk and applies
#    $\frac{\partial}{\partial z}\sigma\big(\frac{z-e}{B}\big) = \frac1B\,\sigma(1-\sigma)$, i.e.
#    $\frac1B K\big(\frac{z-e}{B}\big)$ — the kernel of eq (2) again (`kernel.LOGISTIC.density`).

# %%
show.show_source(histogram.window_half_width)

# %%
show.show_source(histogram_window.WindowedSoftHistogram.backward)

# %% [markdown]
# Measured: bytes autograd keeps for the backward pass (deterministic, counted by
# `show.saved_tensor_bytes`), the window size $E$, and agreement of the gradients with those of the formula
# written out.

# %%
x = photo.clone().requires_grad_(True)
window = histogram.window_half_width(torch.float32)
print(f"W = {window:g} bandwidths (float32)")
print("   K   edges E   saved by reference   saved by soft_histogram")
saved = {}
for K_mem in (16, 32, 64, 128):
    E = histogram_window.EdgeWindow(K_mem, histogram.bin_width(K_mem), histogram.default_bandwidth(K_mem), window).size
    saved[K_mem] = (show.saved_tensor_bytes(histogram.soft_histogram_reference, x, K_mem),
                    show.saved_tensor_bytes(histogram.soft_histogram, x, K_mem))
    print(f"{K_mem:4d} {E:8d} {saved[K_mem][0] / 2**20:15.2f} MiB {saved[K_mem][1] / 2**20:17.3f} MiB")
assert len({fast for _, fast in saved.values()}) == 1, "soft_histogram keeps the same bytes for every K"
growth = [saved[k2][0] - saved[k1][0] for k1, k2 in ((16, 32), (32, 64), (64, 128))]
assert growth[1] == 2 * growth[0] and growth[2] == 2 * growth[1], "the formula written out grows linearly in K"
print(f"at K = {bins}: the formula keeps {saved.get(bins, saved[32])[0] / saved[16][1]:.0f}× the bytes")

weights = torch.rand(1, 3, bins, generator=torch.Generator().manual_seed(seed))  # a random upstream gradient
(grad_fast,) = torch.autograd.grad((histogram.soft_histogram(x, bins) * weights).sum(), x)
(grad_reference,) = torch.autograd.grad((histogram.soft_histogram_reference(x, bins) * weights).sum(), x)
relative = float((grad_fast - grad_reference).abs().max() / grad_reference.abs().max())
print("gradients agree within 1e-4 (relative):", relative < 1e-4)
assert relative < 1e-4

# %% [markdown]
# ### Another kernel is one argument
#
# The kernel is not hard-wired: the reference, the windowed forward and backward and the window
# bound all call the kernel object, `kernel.LOGISTIC` by default. `kernel.GAUSSIAN` puts the standard
# normal in its place — density $\varphi(u) = e^{-u^2/2}/\sqrt{2\pi}$, its integral $\Phi$ instead of
# $\sigma$ in eq (4) — with one argument, `soft_histogram(photo, bins, kernel=kernel.GAUSSIAN)`:

# %%
show.show_source(kernel.Gaussian)

# %% [markdown]
# At the same bandwidth $B$ the two kernels are not the same width: the Gaussian's standard deviation is
# $B$, the logistic's $\pi B/\sqrt3$. Left, the two densities on a log scale, with the half-width $W$ of
# each kernel's float32 window (dotted); right, the photograph's histograms at $K$ and $B = L$ with each
# kernel. The cell prints the windows and checks that the Gaussian's fast path equals its own formula
# written out.

# %% tags=["hide-input"]
kernels = {"logistic": kernel.LOGISTIC, "Gaussian": kernel.GAUSSIAN}
u = torch.linspace(-20, 20, 4001, dtype=torch.float64)
h_by_kernel = {name: histogram.soft_histogram(photo, bins, kernel=k) for name, k in kernels.items()}
for name, k in kernels.items():
    W_k = histogram.window_half_width(torch.float32, k)
    E_k = histogram_window.EdgeWindow(bins, L, B, W_k).size
    error64 = (histogram.soft_histogram(photo64, bins, kernel=k)
               - histogram.soft_histogram_reference(photo64, bins, kernel=k)).abs().max()
    assert float(error64) < 1e-12, f"{name}: the windowed path equals the formula in float64"
    l1_hard = float((h_by_kernel[name] - h_hard).abs().sum(-1).mean())
    print(f"{name:8s}: window W = {W_k:g} bandwidths, E = {E_k} of {bins + 1} edges per pixel; "
          f"mean L1 to the counting histogram {l1_hard:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
for (name, k), style in zip(kernels.items(), ("-", "--")):  # line styles as in the right panel
    axes[0].semilogy(u, k.density(u), "k" + style, label=name)
    W_k = histogram.window_half_width(torch.float32, k)
    for side in (-W_k, W_k):
        axes[0].axvline(side, color="grey", ls=":", lw=1)
axes[0].set_ylim(1e-12, 1)
axes[0].set_xlabel("u = (z − g) / B")
axes[0].set_title("density K(u); dotted: float32 window ±W")
axes[0].legend(fontsize=8)
centres = -1 + (np.arange(bins) + 0.5) * L
for c, colour in enumerate(("tab:red", "tab:green", "tab:blue")):
    axes[1].plot(centres, h_by_kernel["logistic"][0, c], "-", color=colour, lw=1.5)
    axes[1].plot(centres, h_by_kernel["Gaussian"][0, c], "--", color=colour, lw=1.5)
axes[1].plot([], [], "k-", label="logistic")
axes[1].plot([], [], "k--", label="Gaussian")
axes[1].set_xlabel("pixel value")
axes[1].set_title(f"photograph, K = {bins}, B = L")
axes[1].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# The Gaussian's tails fall as $e^{-u^2/2}$, not $e^{-|u|}$, so its window is much narrower and each
# pixel visits fewer edges. Being the narrower kernel at the same $B$, it also smooths less: its
# histogram lies closer to the counting one (the printed L1 distances), with higher peaks and deeper
# valleys. The paper's logistic kernel stays the default: its integral, the sigmoid, is one exponential,
# while $\Phi$ needs the error function.

# %% [markdown]
# ## 9. Try it: bandwidth $B$ and bin count $K$
#
# Move the sliders (in JupyterLab, with a running kernel) to redraw the photograph's and the synthetic
# knee's histograms (the knee's without its background): bars are the counting histogram, lines the soft
# one. Small $B$ follows the bars, including their noise; large $B$ smooths and loses mass at the ends.
# The default $B = L$ moves with $K$; the $B$ slider sets it freely.

# %% tags=["nbval-ignore-output"]
bins_slider = widgets.IntSlider(value=bins, min=4, max=128, step=4, description="K (bins)",
                                continuous_update=False)
bandwidth_slider = widgets.FloatLogSlider(value=B, base=10, min=-3, max=0, step=0.05, description="B",
                                          readout_format=".4f", continuous_update=False)
histogram_plot = widgets.interactive_output(
    show.plot_soft_vs_hard,
    {"images": widgets.fixed(torch.cat([photo, knee])), "bins": bins_slider, "bandwidth": bandwidth_slider,
     "masks": widgets.fixed(torch.cat([torch.ones_like(knee_mask), knee_mask])),
     "titles": widgets.fixed(["photograph", "synthetic knee (foreground)"])},
)
widgets.VBox([widgets.HBox([bins_slider, bandwidth_slider]), histogram_plot])

# %% [markdown]
# ### The same sliders without a kernel
#
# The sliders above need a running Python kernel; in the static book they move, but the plot cannot
# redraw. The explorer below has its frames precomputed by the package (`histgan.book.static_slider`) for a
# grid of $(K, B)$ values when the notebook runs, so it redraws in any browser with no kernel: in the
# rendered book, this is the one that works.

# %% tags=["nbval-ignore-output"]
from histgan.book.static_slider import histogram_explorer

histogram_explorer(photo)  # frames for K = 4 ... 64 and B = 2/256 ... 2/8

# %% [markdown]
# ## 10. Histogram matching by gradient descent
#
# Why differentiability matters, in one experiment. Take the photograph's pixels as free parameters,
# take as target the histogram of a re-graded copy (a warm tone curve, a different gamma per channel),
# and minimise eq (6), $\sum_c \|h^c - h^c_\text{ref}\|_2$, with Adam. The counting histogram gives no
# gradient at all; the soft one moves every pixel towards the bins that lack mass. Pixels with equal
# values receive equal gradients, so the picture keeps its structure while its colours move.

# %%
show.show_source(histogram.histogram_loss)

# %%
source = samples.sample_photograph(match_size)
targets = {  # name: (per-channel gamma of the re-grade, bandwidth B of the loss's histograms)
    "mild re-grade, B = L": ([0.75, 0.95, 1.3], L),
    "strong re-grade, B = L": ([0.6, 0.9, 1.6], L),
    "strong re-grade, B = 3L": ([0.6, 0.9, 1.6], 3 * L),
}
assert not histogram.hard_histogram(source.clone().requires_grad_(True), bins).requires_grad, "counting: no gradient"
results = {}
for name, (gamma, bandwidth) in targets.items():
    reference = ((source + 1) / 2) ** torch.tensor(gamma).reshape(1, 3, 1, 1) * 2 - 1
    h_ref = histogram.soft_histogram(reference, bins, bandwidth)  # (1, 3, K)
    y = source.clone().requires_grad_(True)  # the pixels are the parameters
    optimiser = torch.optim.Adam([y], lr=match_lr)
    losses = []
    for step in range(match_steps):
        loss = histogram.histogram_loss(histogram.soft_histogram(y, bins, bandwidth), h_ref)  # eq (6)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            y.clamp_(-1, 1)
        losses.append(float(loss.detach()))
    error = (y.detach() - reference).mean((0, 2, 3)).abs()  # mean colour error per channel
    results[name] = {"y": y.detach(), "reference": reference, "losses": losses, "error": error}
    print(f"{name:24s} L_hist {losses[0]:.3f} → {losses[-1]:.3f};  mean colour error R, G, B:",
          np.round(error.numpy(), 2))
mild, strong, strong_wide = results.values()
assert mild["losses"][-1] < 0.05 * mild["losses"][0] and float(mild["error"].max()) < 0.02
assert float(strong["error"][0]) > 0.08, "B = L: red has to travel several bins and stalls"
assert float(strong_wide["error"][0]) < 0.02, "B = 3L: the wider kernel reaches far enough"

fig, axes = plt.subplots(len(results), 4, figsize=(12, 2.8 * len(results)), squeeze=False)
for row, (name, result) in zip(axes, results.items()):
    for ax, image, title in zip(row, (source[0], result["y"][0], result["reference"][0]),
                                ("start", "after descent", "target")):
        ax.imshow(images.to_display(image))
        ax.set_title(f"{title} ({name})" if title == "after descent" else title, fontsize=9)
        ax.set_axis_off()
    row[3].semilogy(result["losses"])
    row[3].set_xlabel("step")
    row[3].set_title(r"$\mathcal{L}_\mathrm{hist}$, eq (6)", fontsize=9)
fig.tight_layout()

# %% [markdown]
# The mild re-grade is matched: the loss falls to a few per cent of its start and the mean colour to
# within 0.02 of the target's. The strong one teaches something: with $B = L$ the red channel stalls
# about 0.12 short (a tenth of the range). Its dark pixels must travel several bins, but a pixel's
# gradient comes only from the bins within a few bandwidths of its value: where the neighbouring bins
# already agree with the target, nothing pulls it further. With $B = 3L$ the kernel reaches far enough and
# red is matched; blue, pushed towards $-1$, keeps a small error from the mass lost beyond the edge
# (section 6). The bandwidth trades a sharp histogram against the reach of its gradient — in training,
# the generator, not free pixels, has to make these moves, and $B$ is one of the sweep's parameters.

# %% [markdown]
# ## Summary
#
# - eqs (1)–(2): a kernel density estimate with the sigmoid-derivative kernel; its
#   antiderivative is the sigmoid, which makes every bin integral closed-form.
# - eqs (3)–(4): a bin's mass is a difference of a soft CDF at its two edges, so $K$
#   bins cost $K + 1$ sigmoids per pixel, and the masses sum to slightly less than 1: pixels near $\pm1$
#   lose up to half their mass beyond the outer edges.
# - eq (5): one histogram per channel, `(N, 3, K)`; the masked form is the histogram of the
#   foreground alone.
# - As $B \to 0$ the soft histogram becomes the counting histogram; at the default $B = L$ it is a
#   smoothed version whose gradient reaches pixels a bin or two away.
# - `soft_histogram` equals the formula to float precision, keeps a fixed number of bytes for backward
#   whatever $K$, and its gradient drives a histogram to a target — the property the model's
#   $\mathcal{L}_\text{hist}$ relies on.
