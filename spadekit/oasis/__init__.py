"""`spadekit import oasis`: checkpoints of the reference OASIS code (boschresearch/OASIS) as spadekit run
directories, through the `oasis` generator plugin (reached by name through the registry)."""

from spadekit.oasis.importer import OASIS_DATASETS, OasisImportSummary, find_iteration, import_oasis

__all__ = ["OASIS_DATASETS", "OasisImportSummary", "find_iteration", "import_oasis"]
