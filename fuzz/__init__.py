"""Atheris fuzz targets; run them with ``scripts/fuzz SECONDS`` (see docs/reliability.md)."""
