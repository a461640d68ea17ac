"""The networks of the paper's Fig. 1–2: the conditioned generator, the histogram encoder and its
injections, the PatchGAN discriminator, and what they are built from (layers, spectral norm, a
moving average of weights)."""
