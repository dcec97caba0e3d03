"""`spadekit serve`: the painting page (GauGAN-style) and its API over a run's generator."""
