"""The one error of the composition root: the process cannot start."""

from __future__ import annotations


class StartupError(Exception):
    """The process cannot start; the message says what to do."""
