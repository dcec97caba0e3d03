"""Shared network blocks for generator plugins."""
