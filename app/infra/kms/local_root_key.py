"""The local root key: where it comes from, and the derivations made from it.

The root key is 32 random bytes. It is never used directly: HKDF-SHA256 derives the AES-256-GCM
wrapping key and a short, non-secret fingerprint from it under separate labels, so the
fingerprint reveals nothing about the wrapping key.

``load_local_root_key`` does blocking file I/O: call it at startup, not on the event loop.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

import structlog
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.domain.errors import InvalidInput
from app.infra.files import private_dir

ROOT_KEY_SIZE = 32
_FIELD = "local_root_key"

log = structlog.get_logger(__name__)


def derive(root_key: bytes, label: bytes, length: int) -> bytes:
    """A subkey of ``root_key`` for one purpose, named by ``label``."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label).derive(root_key)


def root_key_fingerprint(root_key: bytes) -> str:
    """16 hex characters that name the root key without revealing it."""
    return derive(root_key, b"ekms-local/fingerprint/v1", 8).hex()


def check_root_key(root_key: bytes) -> bytes:
    if not isinstance(root_key, bytes) or len(root_key) != ROOT_KEY_SIZE:
        raise InvalidInput(f"the local root key must be {ROOT_KEY_SIZE} bytes", field=_FIELD)
    return root_key


def load_local_root_key(
    *, env_value: str | None, file: Path | None, create_if_missing: bool
) -> bytes:
    """The root key from ``env_value`` (base64, standard or urlsafe) if set and not blank, else
    from ``file`` (32 raw bytes or their base64). A missing file is created with a fresh key
    (mode 0600, parent directory 0700) when ``create_if_missing``; otherwise ``InvalidInput``.
    Error messages never echo the key or the file's content."""
    if env_value is not None and env_value.strip():
        return _decode(env_value, source="the configured local root key")
    if file is None:
        raise InvalidInput(
            "no local root key configured: set a base64 root key or a root key file", field=_FIELD
        )
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        if not create_if_missing:
            raise InvalidInput(f"local root key file {file} does not exist", field=_FIELD) from None
        return _create(file)
    except OSError as exc:
        raise InvalidInput(
            f"local root key file {file} cannot be read ({exc.strerror})", field=_FIELD
        ) from None
    _warn_if_readable_by_others(file)
    if len(data) == ROOT_KEY_SIZE:
        return data
    source = f"local root key file {file}"
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise _not_a_key(source) from None
    return _decode(text, source=source)


def _decode(text: str, *, source: str) -> bytes:
    compact = "".join(text.split())
    compact += "=" * (-len(compact) % 4)
    altchars = b"-_" if ("-" in compact or "_" in compact) else None
    try:
        key = base64.b64decode(compact, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        # ``from None``: the decoder's message may quote the offending characters.
        raise _not_a_key(source) from None
    if len(key) != ROOT_KEY_SIZE:
        raise InvalidInput(
            f"{source} must decode to {ROOT_KEY_SIZE} bytes (got {len(key)})", field=_FIELD
        )
    return key


def _not_a_key(source: str) -> InvalidInput:
    return InvalidInput(
        f"{source} is neither {ROOT_KEY_SIZE} raw bytes nor their base64", field=_FIELD
    )


def _create(file: Path) -> bytes:
    private_dir(file.parent)
    key = secrets.token_bytes(ROOT_KEY_SIZE)
    try:
        # O_EXCL: two processes starting together must not overwrite each other's key.
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_local_root_key(env_value=None, file=file, create_if_missing=False)
    with os.fdopen(fd, "wb") as out:
        out.write(base64.b64encode(key) + b"\n")
        out.flush()
        os.fsync(out.fileno())
    log.warning(
        "local_root_key_created",
        path=str(file),
        fingerprint=root_key_fingerprint(key),
        hint="back this file up: everything wrapped under it is lost without it",
    )
    return key


def _warn_if_readable_by_others(file: Path) -> None:
    try:
        mode = file.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        log.warning(
            "local_root_key_file_permissions_too_open", path=str(file), mode=oct(mode & 0o777)
        )
