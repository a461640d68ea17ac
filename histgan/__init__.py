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

# The public names and the module each comes from. They are imported on first use (PEP 562), so that
# ``import histgan.train.loop`` runs the training code and what it needs, not the whole package: the main
# job's stage keys hash exactly the modules a stage runs.
_EXPORTS = {
    "default_bandwidth": "histogram",
    "hard_histogram": "histogram",
    "histogram_loss": "histogram",
    "soft_histogram": "histogram",
    "soft_histogram_reference": "histogram",
    "UnpairedImageFolder": "data.folders",
    "load_domain": "data.folders",
    "load_image": "data.image_files",
    "load_mask": "data.image_files",
    "ground_truth": "data.synthetic",
    "write_dataset": "data.synthetic",
    "load_checkpoint": "train.checkpoint",
    "save_checkpoint": "train.checkpoint",
    "PRESETS": "config",
    "TrainConfig": "config",
    "make_config": "config",
    "Translator": "inference",
    "load_run": "inference",
    "translate": "inference",
    "fit": "train.loop",
}


def __getattr__(name: str):
    """``histgan.translate`` and friends: import the defining module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'histgan' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"histgan.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


#: The package's version, said only here: pyproject.toml reads it statically, so it stays a string literal.
__version__ = "0.1.0"

__all__ = ["__version__", *_EXPORTS]
