"""spade: the SPADE generator of Park et al., CVPR 2019 (paper Figure 12)."""
