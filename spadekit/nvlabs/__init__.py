"""`spadekit import nvlabs`: the official SPADE checkpoints (NVlabs/SPADE) as spadekit run directories.

`keys` reads the official files and maps their keys; `importer` infers the options, converts the networks
and writes the run directory.
"""

from spadekit.nvlabs.importer import (
    OFFICIAL_DATASETS,
    ImportSummary,
    NvlabsConfig,
    import_nvlabs,
    official_config,
    official_semantic_nc,
)

__all__ = ["OFFICIAL_DATASETS", "ImportSummary", "NvlabsConfig", "import_nvlabs", "official_config",
           "official_semantic_nc"]
