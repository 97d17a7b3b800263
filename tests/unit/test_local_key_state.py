"""The local root key has states the CLI sets and the local adapter enforces (issue 10, finding
12: it always reported Enabled, so fail-closed could not be tried on the embedded default)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from app.application.ports import ExternalKeyRef
from app.domain.errors import InvalidInput, KeyUnavailable, Reason
from app.domain.values import ExternalKeyStatus, KmsProvider
from app.infra.kms.local import LocalKms, open_local_kms
from app.infra.kms.local_state import LocalKeyState, set_state, state_file_for

REF = ExternalKeyRef(provider=KmsProvider.LOCAL, key_id="local-root")
CONTEXT = {"ekms:purpose": "kek"}
SECRET = b"\x5a" * 32


def open_kms(tmp_path: Path) -> LocalKms:
    connector = open_local_kms(env_value=None, file=tmp_path / "root.key", create_if_missing=True)
    return connector.connect(REF)


async def refused(kms: LocalKms, wrapped: bytes) -> set[Reason]:
    reasons = set()
    for call in (kms.wrap(SECRET, CONTEXT), kms.unwrap(wrapped, CONTEXT), kms.rewrap(wrapped, {})):
        with pytest.raises(KeyUnavailable) as err:
            await call
        reasons.add(err.value.reason)
    return reasons


async def test_disabled_refuses_wrap_and_unwrap_until_enabled(tmp_path: Path) -> None:
    kms = open_kms(tmp_path)
    wrapped = (await kms.wrap(SECRET, CONTEXT)).ciphertext

    assert set_state(tmp_path / "root.key", LocalKeyState.DISABLED) is LocalKeyState.ENABLED

    assert (await kms.describe()).status is ExternalKeyStatus.DISABLED
    assert await refused(kms, wrapped) == {Reason.EXTERNAL_KEY_DISABLED}
    assert (await kms.rotation_state()).marker  # readable while disabled, as with AWS
    state_file = state_file_for(tmp_path / "root.key")
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert state_file.read_text() == "disabled\n"

    set_state(tmp_path / "root.key", LocalKeyState.ENABLED)
    assert (await kms.describe()).status is ExternalKeyStatus.ENABLED
    assert await kms.unwrap(wrapped, CONTEXT) == SECRET


async def test_delete_overwrites_and_removes_the_key_for_good(tmp_path: Path) -> None:
    key_file = tmp_path / "root.key"
    kms = open_kms(tmp_path)
    wrapped = (await kms.wrap(SECRET, CONTEXT)).ciphertext
    os.link(key_file, tmp_path / "second-name")  # sees the same inode after the unlink

    set_state(key_file, LocalKeyState.DELETED)

    assert not key_file.exists()
    leftover = (tmp_path / "second-name").read_bytes()
    assert leftover and leftover == b"\x00" * len(leftover)  # overwritten before removal
    assert (await kms.describe()).status is ExternalKeyStatus.DELETED
    assert await refused(kms, wrapped) == {Reason.EXTERNAL_KEY_DELETED}
    with pytest.raises(InvalidInput):
        set_state(key_file, LocalKeyState.ENABLED)

    restarted = open_kms(tmp_path)  # a new process: the key is neither loaded nor re-created
    assert not key_file.exists()
    assert (await restarted.describe()).status is ExternalKeyStatus.DELETED
    assert await refused(restarted, wrapped) == {Reason.EXTERNAL_KEY_DELETED}
    with pytest.raises(KeyUnavailable):
        await restarted.rotation_state()


async def test_an_unreadable_state_fails_closed(tmp_path: Path) -> None:
    kms = open_kms(tmp_path)
    wrapped = (await kms.wrap(SECRET, CONTEXT)).ciphertext
    state_file_for(tmp_path / "root.key").write_text("maybe\n")

    description = await kms.describe()
    assert description.status is ExternalKeyStatus.UNAVAILABLE and description.reason
    assert await refused(kms, wrapped) == {Reason.EXTERNAL_KEY_UNAVAILABLE}
