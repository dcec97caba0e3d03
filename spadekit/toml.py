"""`tomllib` on every supported Python (the standard library's from 3.11, the `tomli` backport on 3.10)."""

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["tomllib"]
