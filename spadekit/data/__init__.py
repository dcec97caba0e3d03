"""Shards and data loading: the public pieces that dataset plugins and trainers use."""

from spadekit.data.manifest import DatasetFacts, Manifest
from spadekit.data.sample import Sample, SkipSample
from spadekit.data.source import DatasetSource

__all__ = ["DatasetFacts", "DatasetSource", "Manifest", "Sample", "SkipSample"]
