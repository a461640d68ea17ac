"""Training: the step and the resumable loop, checkpoints, runtime set-up, jobs side by side, the masker, the DCGAN."""
