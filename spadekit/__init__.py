"""spadekit: semantic image synthesis with SPADE (Park et al., CVPR 2019).

The top-level package stays light (no torch import) so that the command line starts fast.
"""

__version__ = "0.1.0"
