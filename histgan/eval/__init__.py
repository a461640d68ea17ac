"""Evaluation: the paper's protocol, baselines, realism, the report and its figures, and the latent-space studies."""
