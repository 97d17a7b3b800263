"""The PKCS#11 session of one connector: logged in once, reused by every call, calls serialised.

python-pkcs11 initialises a library with ``C_Initialize(NULL)``, which tells it (PKCS#11 v2.40,
5.4) that no two threads will call it at once, and SoftHSM2 then runs without its mutexes: 50
concurrent calls from several threads, one session each, failed with CKR_GENERAL_ERROR here. So
every call into one library, from any connector in the process, holds that library's lock, and
one session per connector is all a pool could use: it is opened and logged in on the first call
(C_Login with the user PIN), kept, and closed (with C_Logout) by ``close()``.

A call that finds the session lost (the token removed, the library re-initialised, the login
ended) drops it and is tried once more on a fresh one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import pkcs11
import pkcs11.exceptions as p11
import structlog

from app.infra.kms.pkcs11.config import Pkcs11Config
from app.infra.kms.pkcs11.errors import PIN_REFUSED, SESSION_LOST, LibraryUnavailable

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Library

T = TypeVar("T")
log = structlog.get_logger(__name__)

_library_locks: dict[str, threading.Lock] = {}
_library_locks_guard = threading.Lock()


def library_lock(library: str) -> threading.Lock:
    """The process-wide lock that every call into ``library`` holds."""
    with _library_locks_guard:
        return _library_locks.setdefault(library, threading.Lock())


class SessionPool:
    """A pool of one logged-in session (see the module docstring for why one), opened on first
    use, reopened after a loss, every use under the library's process-wide lock."""

    def __init__(self, config: Pkcs11Config) -> None:
        self._config = config
        self._lock = library_lock(config.library)
        self._lib: Pkcs11Library | None = None
        self._session: pkcs11.Session | None = None
        self._pin_refused: type[BaseException] | None = None
        self.sessions_opened = 0  # over the pool's life: 1 unless sessions were lost
        self.logins = 0  # C_Login attempts with the PIN

    def __repr__(self) -> str:
        return (
            f"SessionPool(library={self._config.library!r}, "
            f"token_label={self._config.token_label!r}, open={self._session is not None})"
        )

    def run(self, fn: Callable[[pkcs11.Session], T]) -> T:
        """``fn(session)`` under the library's lock (blocking until it is free)."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    return fn(self._session or self._open())
                except p11.PKCS11Error as exc:
                    if not self._lost(exc):
                        raise
                    self._drop(type(exc).__name__)
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the session (logging out). The pool opens a new one on its next call."""
        with self._lock:
            self._drop(None)

    def _lost(self, exc: p11.PKCS11Error) -> bool:
        # CKR_CRYPTOKI_NOT_INITIALIZED has no exception class of its own: ask the library.
        uninitialised = self._lib is not None and not self._lib.initialized
        return isinstance(exc, SESSION_LOST) or uninitialised

    def _open(self) -> pkcs11.Session:
        """Load the library, find the token, open a session and log in. Lock held.

        A PIN the token refused is not tried again by this pool: HSMs lock the user PIN after
        a few failures, and each sync or probe would spend one. (Fix the setting, restart.)"""
        if self._pin_refused is not None:
            raise self._pin_refused()
        try:
            lib = pkcs11.lib(self._config.library)
        except p11.PKCS11Error as exc:
            raise LibraryUnavailable(self._config.library) from exc
        self._lib = lib
        token = lib.get_token(token_label=self._config.token_label)
        try:
            self.logins += 1
            session = token.open(
                rw=self._config.read_write, user_pin=self._config.pin.get_secret_value()
            )
        except PIN_REFUSED as exc:
            self._pin_refused = type(exc)
            raise
        except p11.UserAlreadyLoggedIn:
            # Another part of this process is logged in to the token, and sessions share the
            # login. (The session python-pkcs11 opened before C_Login failed stays open until
            # C_Finalize.)
            session = token.open(rw=self._config.read_write)
        self._session = session
        self.sessions_opened += 1
        log.info(
            "pkcs11_session_opened",
            library=self._config.library,
            token_label=self._config.token_label,
        )
        return session

    def _drop(self, cause: str | None) -> None:
        session, self._session = self._session, None
        if cause is not None:
            log.warning("pkcs11_session_lost", token_label=self._config.token_label, error=cause)
        if session is not None:
            try:
                session.close()
            except p11.PKCS11Error:
                pass  # already gone with its token or library
