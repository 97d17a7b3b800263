"""Fixtures of the fault tests: a KMS server of the test's own, and tidy process cleanup.

The suite runs short in CI; ``EKMS_FAULT_ROUNDS`` (kill -9 rounds), ``EKMS_RACE_ROUNDS``
(racing rotations), ``EKMS_AUDIT_KILL_ROUNDS`` (kill -9 rounds per audit mode) and
``EKMS_FAULT_SECONDS`` (how long each outage and load phase lasts) make it longer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import e2e_options, ekms  # noqa: F401 - the in-process gRPC world
from tests.faults.support import OwnKms

FAULT_SECONDS = float(os.environ.get("EKMS_FAULT_SECONDS", "1.5"))


@pytest.fixture
def own_kms(aws_env: str) -> Iterator[OwnKms]:
    kms = OwnKms(aws_env)
    try:
        yield kms
    finally:
        kms.stop()
