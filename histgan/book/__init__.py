"""The book's machinery: the main job's pipeline, notebook execution, sweeps, kernel-free sliders, offline assets.

Needs the ``book`` extra (``pip install histgan[book]``): Jupyter Book, papermill, jupytext.
"""
