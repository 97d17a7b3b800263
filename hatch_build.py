"""Hatch build hook: the ekms server builds only as an editable install, never a regular wheel.

ekms runs from its source tree (`uv sync`, the Dockerfile), so its packages ``app`` and
``migrations`` are importable only in its own environment. A regular wheel would install a
top-level ``app`` into whatever environment it lands in, where a caller's own ``app`` collides
with it; callers install the client package instead (``pip install ./clients/python``).
"""

from __future__ import annotations

from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    """Refuse a regular wheel of the server; editable installs (``uv sync``) pass."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Raise unless this is an editable build."""
        if version != "editable":
            raise RuntimeError(
                "the ekms server is not published as a wheel: run it from its source tree "
                "(uv sync --frozen, or the Dockerfile); for the Python client, build or install "
                "clients/python (pip install ./clients/python)"
            )
