"""What the PKCS#11 connector needs: the library, the token, the user PIN, the pool's bounds."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from app.domain.errors import InvalidInput

# Debian's SoftHSM2 module (package libsofthsm2); a real HSM names its vendor's library.
DEFAULT_LIBRARY = "/usr/lib/softhsm/libsofthsm2.so"
MAX_PIN_FILE_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Pkcs11Config:
    """``pin`` is the token's user (CKU_USER) PIN: a ``SecretStr``, left out of the repr.

    ``call_timeout`` is how long a caller waits for its call (queued behind others, then run)
    before ``ServiceUnavailable``; the library call itself cannot be cancelled and finishes in
    its thread.
    """

    token_label: str
    pin: SecretStr = field(repr=False)
    library: str = DEFAULT_LIBRARY
    call_timeout: float = 5.0
    # A read/write session (C_OpenSession with CKF_RW_SESSION): only the XKS keys' connector
    # needs one, to generate and destroy token objects; the KEK's stays read-only.
    read_write: bool = False

    def __post_init__(self) -> None:
        if not self.library:
            raise InvalidInput("the PKCS#11 library path is empty", field="pkcs11_library")
        if not self.token_label:
            raise InvalidInput("the PKCS#11 token label is empty", field="pkcs11_token_label")
        if not isinstance(self.pin, SecretStr) or not self.pin.get_secret_value():
            raise InvalidInput("the PKCS#11 user PIN is empty", field="pkcs11_pin")
        if not self.call_timeout > 0:
            raise InvalidInput("call_timeout must be positive", field="pkcs11_call_timeout")


def resolve_pin(pin: SecretStr | None, pin_file: Path | None) -> SecretStr:
    """The PIN from ``EKMS_PKCS11_PIN`` or ``EKMS_PKCS11_PIN_FILE`` (exactly one of them).

    The file holds the PIN on its first line (a trailing newline is dropped) and must not be
    readable by group or others. Blocking file I/O: call it at startup. Errors name the setting,
    never the content.
    """
    if pin is not None and pin_file is None:
        return pin
    if pin_file is not None and pin is None:
        return _read_pin_file(pin_file)
    raise InvalidInput(
        "set exactly one of EKMS_PKCS11_PIN and EKMS_PKCS11_PIN_FILE", field="pkcs11_pin"
    )


def _read_pin_file(pin_file: Path) -> SecretStr:
    try:
        mode = os.stat(pin_file).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InvalidInput(
                f"EKMS_PKCS11_PIN_FILE {pin_file} is open to group or others (chmod 600)",
                field="pkcs11_pin_file",
            )
        raw = pin_file.read_bytes()[: MAX_PIN_FILE_BYTES + 1]
    except OSError as exc:
        raise InvalidInput(
            f"EKMS_PKCS11_PIN_FILE {pin_file} cannot be read ({type(exc).__name__})",
            field="pkcs11_pin_file",
        ) from None
    lines = raw.splitlines()
    try:
        text = lines[0].decode("utf-8") if lines else ""
    except UnicodeDecodeError:  # its message quotes the offending byte: never chain it
        text = ""
    if not text or len(raw) > MAX_PIN_FILE_BYTES:
        raise InvalidInput(
            f"EKMS_PKCS11_PIN_FILE {pin_file} holds no usable PIN", field="pkcs11_pin_file"
        )
    return SecretStr(text)
