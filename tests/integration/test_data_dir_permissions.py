"""Finding 10: ``ekms.db`` was created world-readable (0644). Everything ekms creates in the data
directory is now private to its user: the directory 0700; the SQLite database and its ``-wal``
and ``-shm`` files, the local root key and the dev JWT secret 0600. Files that already exist
keep their mode and are reported with a warning.

The umask is set to the common 022 for each test, so a file left to the default mode would be
0644 and fail here."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from app.bootstrap import dev_jwt_secret_file, running
from app.infra.settings import Settings


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture(autouse=True)
def no_ekms_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("EKMS_")]:
        monkeypatch.delenv(name)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_fresh_data_directory_is_private(tmp_path: Path) -> None:
    data = tmp_path / "var" / "ekms"
    settings = Settings(data_dir=data, scheduler_enabled=False)
    async with running(settings):
        files = {
            "ekms.db": data / "ekms.db",
            "ekms.db-wal": data / "ekms.db-wal",
            "ekms.db-shm": data / "ekms.db-shm",
            "local-root.key": settings.effective_local_root_key_file,
            "dev secret": dev_jwt_secret_file(settings),
        }
        modes = {name: oct(_mode(path)) for name, path in files.items()}
        assert modes == dict.fromkeys(files, "0o600")
        assert oct(_mode(data)) == "0o700"
        others = {p.name for p in data.iterdir()} - {p.name for p in files.values()}
        assert not others, f"files nobody checked: {others}"


async def test_existing_files_keep_their_mode_and_are_reported(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=data, scheduler_enabled=False)
    async with running(settings):
        pass
    data.chmod(0o755)
    (data / "ekms.db").chmod(0o644)
    dev_jwt_secret_file(settings).chmod(0o640)
    with capture_logs() as logs:
        async with running(settings):
            pass
    reported = {
        Path(e["path"]).name: e["mode"]
        for e in logs
        if e["event"] == "data_file_permissions_too_open"
    }
    assert reported == {
        "data": "0o755",
        "ekms.db": "0o644",
        dev_jwt_secret_file(settings).name: "0o640",
    }
    assert _mode(data / "ekms.db") == 0o644, "an operator's choice is left alone"
