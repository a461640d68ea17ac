"""histgan — colour-controlled unpaired image translation.

A CycleGAN whose generators take the colour histogram of a reference image, trained with a
differentiable (KDE) histogram loss and evaluated by CIE L*a*b* colour difference graded on the
Japanese Industrial Standard scale.

.. rubric:: Paper ↔ code (the book's notation page renders this table)

=================  =============================  ==============================================
paper              code                           meaning
=================  =============================  ==============================================
X, Y               domain ``A``, ``B`` folders    simulator renders, real photographs
G: X → Y           ``G``                          generator, takes Y_ref's colour code
F: Y → X           ``F``                          generator, takes X_ref's colour code (bi only)
D_X, D_Y           ``D_x``, ``D_y``               PatchGAN discriminators
I(x) ∈ [-1, 1]     ``images``                     pixel values in model space
K, B, L            ``bins``, ``bandwidth``        bin count, KDE bandwidth, bin width 2/K
P_I(k), eq (3)     ``soft_histogram``             differentiable histogram ``(N, 3, K)``
h_ref, h_fake      ``h_ref``, ``h_fake``          reference / generated histograms
L_hist, eq (6)     ``histogram_loss``             Σ_c ‖h_fake^c − h_ref^c‖₂
λ_gan … λ_hist     ``lambda_gan`` …               loss weights of eq (7)
ΔE, eq (12)        ``delta_e``                    distance of mean L*a*b* colours
=================  =============================  ==============================================
"""

from histgan.histogram import (
    default_bandwidth,
    hard_histogram,
    histogram_loss,
    soft_histogram,
    soft_histogram_reference,
)
from histgan.data import UnpairedImageFolder, load_domain, load_image, load_mask
from histgan.synthetic import ground_truth, write_dataset
from histgan.checkpoint import load_checkpoint, save_checkpoint
from histgan.config import PRESETS, TrainConfig, make_config
from histgan.inference import Translator, load_run, translate
from histgan.train import fit

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "default_bandwidth",
    "hard_histogram",
    "histogram_loss",
    "soft_histogram",
    "soft_histogram_reference",
    "UnpairedImageFolder",
    "load_domain",
    "load_image",
    "load_mask",
    "ground_truth",
    "write_dataset",
    "PRESETS",
    "TrainConfig",
    "make_config",
    "fit",
    "save_checkpoint",
    "load_checkpoint",
    "Translator",
    "load_run",
    "translate",
]
