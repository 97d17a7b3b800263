"""Private files under the data directory: the SQLite database, the local root key, the dev
JWT secret.

What ekms creates is private to its user: directories 0700, files 0600 (the mode is given at
creation, so there is no moment when the file is readable by others). What already exists is
left as it is, with a warning when group or others may read it: the operator may have chosen
that (a shared volume, a group-readable backup directory), and changing modes behind their back
would hide the choice instead of surfacing it.

Blocking file I/O: call these at startup, not on the event loop.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import structlog

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

log = structlog.get_logger(__name__)


def private_dir(path: Path) -> Path:
    """``path`` as a directory: created 0700 (its missing parents with the default mode), or
    left as it is with a warning if it is open to group or others."""
    if path.is_dir():
        warn_if_open(path)
        return path
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    return path


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 if it does not exist (True if this call created
    it); an existing file is left as it is, with a warning if it is open to group or others."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        warn_if_open(path)
        return False
    os.close(fd)
    return True


def warn_if_open(path: Path) -> None:
    """Log a warning when group or others have any permission on ``path``."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        log.warning(
            "data_file_permissions_too_open",
            path=str(path),
            mode=oct(mode),
            hint=f"chmod {oct(PRIVATE_DIR_MODE if path.is_dir() else PRIVATE_FILE_MODE)[2:]}",
        )
