"""The local root key's state: what ``ekms local-key`` sets and ``LocalKms`` obeys.

Nothing outside ekms can disable the embedded default's root key, so, for development,
``ekms local-key disable|enable|delete`` plays the customer's KMS console. The state is one
word in a small file beside the root key (``local-root.key.state``, mode 0600), read by the
local adapter on every call: a running server refuses wrap and unwrap at once, and its status
sync (``POST /api/v1/ekms/sync``: at once) records the state and fails closed, as with AWS.

    state      the file    the local adapter
    enabled    absent      serves
    disabled   disabled    describe: Disabled; wrap/unwrap refused (EXTERNAL_KEY_DISABLED)
    deleted    deleted     describe: Deleted; every call refused (EXTERNAL_KEY_DELETED). The
                           root key file was overwritten and removed: irreversible.

An unreadable or unknown state file is not guessed at: the adapter fails closed
(describe: Unavailable; calls refused with EXTERNAL_KEY_UNAVAILABLE).

These functions do blocking file I/O: the adapter calls ``read_state`` in a worker thread.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

from app.domain.errors import InvalidInput, KeyUnavailable, Reason


class LocalKeyState(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"
    DELETED = "deleted"


class UnreadableState(Exception):
    """The state file exists but says nothing we know (or cannot be read)."""


def state_file_for(root_key_file: Path) -> Path:
    return root_key_file.with_name(root_key_file.name + ".state")


def read_state(state_file: Path) -> LocalKeyState:
    """The state in ``state_file``; ENABLED when there is none. ``UnreadableState`` otherwise."""
    try:
        text = state_file.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return LocalKeyState.ENABLED
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableState(f"the local key state file {state_file} cannot be read") from exc
    try:
        return LocalKeyState(text)
    except ValueError:
        raise UnreadableState(f"the local key state file {state_file} is not a state") from None


def refusal(state: LocalKeyState) -> KeyUnavailable:
    """What a wrap or unwrap answers in ``state`` (the AWS adapter's errors, same reasons)."""
    if state is LocalKeyState.DISABLED:
        return KeyUnavailable("the local root key is disabled", reason=Reason.EXTERNAL_KEY_DISABLED)
    return KeyUnavailable("the local root key is deleted", reason=Reason.EXTERNAL_KEY_DELETED)


def set_state(root_key_file: Path, target: LocalKeyState) -> LocalKeyState:
    """Move the local key to ``target``; returns the state it was in.

    Deleting records the state first, then destroys the key file (``destroy_key_file``): a
    crash between the two leaves a Deleted key whose file the next ``delete`` removes, never
    an Enabled key without material (which the next start would replace with a new key).
    A deleted key stays deleted: ``InvalidInput``.
    """
    state_file = state_file_for(root_key_file)
    try:
        current = read_state(state_file)
    except UnreadableState:
        current = None  # fixing a broken state file is what these commands are for
    if current is LocalKeyState.DELETED and target is not LocalKeyState.DELETED:
        raise InvalidInput("the local root key is deleted: that cannot be undone")
    _write(state_file, target)
    if target is LocalKeyState.DELETED:
        destroy_key_file(root_key_file)
    return current or target


def destroy_key_file(path: Path) -> bool:
    """Overwrite ``path`` with zeros, flush it to disk, and remove it; False if it was absent.

    This erases the key from the file, not from copies (backups, snapshots), nor from flash
    blocks or journals that a copy-on-write or wear-levelling storage keeps.
    """
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return False
    try:
        size = os.fstat(fd).st_size
        os.write(fd, b"\x00" * size)
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    _sync_directory(path.parent)
    return True


def _write(state_file: Path, state: LocalKeyState) -> None:
    """Replace the state file atomically (a reader sees the old or the new word, never half)."""
    state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = state_file.with_name(f".{state_file.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)  # a leftover must not lend us its permissions
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, f"{state.value}\n".encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, state_file)
    _sync_directory(state_file.parent)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
