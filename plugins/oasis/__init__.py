"""oasis: the OASIS generator, segmentation discriminator and losses of Sushko, Schönfeld et al., ICLR 2021
("You Only Need Adversarial Supervision for Semantic Image Synthesis"; reference code boschresearch/OASIS)."""
