"""Finding 7 of issue 12: callers got the whole server (a top-level ``app``) to use the client.

The client package (clients/python, ``ekms-client``) is built into a wheel, installed into a
fresh venv with nothing but its own dependencies, and used from there against the live server,
blocking and asyncio; ``import app`` fails in that venv. The server itself refuses to build a
regular wheel (hatch_build.py), so it cannot be installed where a caller's ``app`` would collide.
The dependencies are pinned to the versions of this environment (uv.lock), so uv takes them from
its cache.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from tests.e2e.conftest import Ekms, mint

ROOT = Path(__file__).parents[2]
CLIENT_DEPENDENCIES = {"grpcio", "protobuf", "googleapis-common-protos"}

ROUND_TRIP = """
import asyncio, json, os, sys
from ekms_client import AsyncEkmsClient, EkmsClient, EkmsRpcError, Target

address, token = sys.argv[1], os.environ["EKMS_TEST_TOKEN"]
salary = Target.for_field("employees", "salary")
out = {}
with EkmsClient(address, token=token) as ekms:
    sealed = ekms.encrypt(salary, b"85000", context=b"employee-42")
    out["sync"] = ekms.decrypt(salary, sealed.ciphertext, context=b"employee-42").plaintext.decode()
    try:
        ekms.decrypt(salary, sealed.ciphertext, context=b"employee-7")
    except EkmsRpcError as err:
        out["sync_error"] = [err.code.name, err.reason]

async def main():
    async with AsyncEkmsClient(address, token=lambda: token) as ekms:
        sealed = await ekms.encrypt(salary, b"91000", context=b"employee-43")
        opened = await ekms.decrypt(salary, sealed.ciphertext, context=b"employee-43")
        out["async"] = opened.plaintext.decode()
        rewrapped = await ekms.rewrap(salary, sealed.ciphertext, context=b"employee-43")
        out["async_rewrap_changed"] = rewrapped.changed

asyncio.run(main())
print(json.dumps(out))
"""


@dataclass(frozen=True)
class ClientVenv:
    wheel: Path
    python: Path
    cwd: Path  # a directory without the repository on it: nothing to import by accident


def _uv() -> str:
    uv = shutil.which("uv")
    assert uv is not None, "uv is on PATH under scripts/test (it installs it)"
    return uv


def _run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientVenv]:
    tmp = tmp_path_factory.mktemp("client-package")
    built = _run(_uv(), "build", "--wheel", "--out-dir", tmp / "dist", ROOT / "clients" / "python")
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("ekms_client-*.whl")
    venv = tmp / "venv"
    made = _run(_uv(), "venv", "--quiet", "--python", sys.executable, venv)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    pins = tmp / "pins.txt"
    pins.write_text("".join(f"{d}=={metadata.version(d)}\n" for d in sorted(CLIENT_DEPENDENCIES)))
    installed = _run(
        _uv(), "pip", "install", "--quiet", "--python", python, "--constraint", pins, wheel
    )
    assert installed.returncode == 0, installed.stderr
    (tmp / "elsewhere").mkdir()
    yield ClientVenv(wheel, python, tmp / "elsewhere")


def test_the_wheel_holds_the_client_and_its_generated_code_only(client_venv: ClientVenv) -> None:
    names = zipfile.ZipFile(client_venv.wheel).namelist()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"ekms_client"}
    assert "ekms_client/gen/ekms/v1/crypto_pb2.py" in names
    assert "ekms_client/py.typed" in names


def test_the_fresh_venv_has_the_client_and_its_three_dependencies(client_venv: ClientVenv) -> None:
    probe = _run(
        client_venv.python,
        "-c",
        "import json; from importlib import metadata; "
        "print(json.dumps(metadata.requires('ekms-client')))",
        cwd=client_venv.cwd,
    )
    assert probe.returncode == 0, probe.stderr
    declared = json.loads(probe.stdout)
    unconditional = [r for r in declared if "extra ==" not in r]
    requires = {r.split(">")[0].split("=")[0].split("<")[0] for r in unconditional}
    assert requires == CLIENT_DEPENDENCIES
    # File and stream encryption (ekms_client.envelope) is the one extra: cryptography.
    extras = {r.split(">")[0].split("=")[0].split("<")[0] for r in declared if "extra ==" in r}
    assert extras == {"cryptography"}
    named = {r.split("extra ==")[1].strip(" '\"") for r in declared if "extra ==" in r}
    assert named == {"files"}
    listed = _run(_uv(), "pip", "list", "--python", client_venv.python, "--format", "json")
    installed = {p["name"] for p in json.loads(listed.stdout)}
    assert "ekms-client" in installed and "ekms" not in installed
    assert not installed & {"fastapi", "sqlalchemy", "grpcio-status", "aiobotocore", "uvicorn"}


def test_import_app_fails_in_the_fresh_venv(client_venv: ClientVenv) -> None:
    for module in ("app", "migrations"):
        imported = _run(client_venv.python, "-c", f"import {module}", cwd=client_venv.cwd)
        assert imported.returncode != 0
        assert f"No module named '{module}'" in imported.stderr


async def test_a_round_trip_from_the_fresh_venv_sync_and_asyncio(
    ekms: Ekms, client_venv: ClientVenv
) -> None:
    # The server runs on this test's event loop: wait for the child without blocking it.
    child = await asyncio.create_subprocess_exec(
        str(client_venv.python),
        "-c",
        ROUND_TRIP,
        ekms.address,
        cwd=client_venv.cwd,
        env={**os.environ, "EKMS_TEST_TOKEN": mint("billing-svc", "billing")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 0, stderr.decode()
    assert json.loads(stdout) == {
        "sync": "85000",
        "sync_error": ["INVALID_ARGUMENT", "DECRYPTION_FAILED"],
        "async": "91000",
        "async_rewrap_changed": False,
    }


def test_the_server_refuses_to_build_a_wheel(tmp_path: Path) -> None:
    built = _run(_uv(), "build", "--wheel", "--out-dir", tmp_path, ROOT)
    assert built.returncode != 0
    assert "not published as a wheel" in built.stderr
    assert list(tmp_path.glob("*.whl")) == []
