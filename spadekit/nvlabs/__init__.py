"""`spadekit import nvlabs`: the official SPADE checkpoints (NVlabs/SPADE) as spadekit run directories.

`configs` holds the official dataset configurations, `options` reads the checkpoint folder's opt.txt,
`keys` reads the official files and maps their keys, `layout` reads the generator options off the weights
(and checks opt.txt against them), `importer` converts the networks and writes the run directory.
"""

from spadekit.nvlabs.configs import OFFICIAL_DATASETS, NvlabsConfig, official_config, official_semantic_nc
from spadekit.nvlabs.importer import ImportSummary, import_nvlabs

__all__ = ["OFFICIAL_DATASETS", "ImportSummary", "NvlabsConfig", "import_nvlabs", "official_config",
           "official_semantic_nc"]
