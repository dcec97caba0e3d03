"""Training: the loop, distributed setup, checkpoints, EMA, logging."""
