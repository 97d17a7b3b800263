"""``ekms encrypt``, ``ekms decrypt`` and ``ekms mac`` against a real uvicorn on Postgres: a value
over /crypto/encrypt|decrypt, a file in the envelope format over /crypto/data-key (written only
when it verifies), MACs and their verification, MAP enforcement, and the usage errors."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.rest_support import (
    APP_ROLE,
    MODULE,
    Cli,
    LiveServer,
    auth,
    serve,
    settings_for,
)

FIELD = ("--table", "employees", "--column", "iban")
APP = (APP_ROLE,)


@pytest.fixture
async def live_pg(pg_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with serve(settings_for(pg_url, tmp_path / "data")) as live:
        async with httpx.AsyncClient(base_url=live.url, headers=auth("ekms.admin")) as http:
            for path, body in [
                ("/api/v1/modules", {"name": MODULE}),
                (
                    f"/api/v1/modules/{MODULE}/policies",
                    {
                        "target_type": "role",
                        "target": APP_ROLE,
                        "operations": ["encrypt", "decrypt", "mac"],
                        "result": "track",
                    },
                ),
                (
                    f"/api/v1/modules/{MODULE}/policies",
                    {
                        "target_type": "role",
                        "target": "writer",
                        "operations": ["encrypt"],
                        "result": "track",
                    },
                ),
                (
                    "/api/v1/field-configs",
                    {"table": "employees", "column": "iban", "module": MODULE},
                ),
            ]:
                answer = await http.post(path, json=body)
                assert answer.status_code < 300, answer.text
        yield live


async def test_a_value_round_trip_and_a_wrong_context(live_pg: LiveServer) -> None:
    ekms = Cli(live_pg.url)
    sealed = (await ekms("encrypt", "85000", *FIELD, "--context", "emp-42", roles=APP)).stdout
    ciphertext = sealed.strip()
    assert ciphertext.startswith("ekms:v1:")
    opened = await ekms("decrypt", ciphertext, *FIELD, "--context", "emp-42", roles=APP)
    assert opened.stdout == "85000\n"
    as_json = json.loads(
        (
            await ekms(
                "decrypt", ciphertext, *FIELD, "--context", "emp-42", "-o", "json", roles=APP
            )
        ).stdout
    )
    assert as_json["key_version"] == 1
    wrong = await ekms("decrypt", ciphertext, *FIELD, "--context", "emp-7", roles=APP, code=1)
    assert "DECRYPTION_FAILED" in wrong.output and "85000" not in wrong.output


def _file(verb: str, source: Path, destination: Path) -> tuple[str, ...]:
    return (
        verb,
        "--module",
        MODULE,
        "--context",
        "t7",
        "--in",
        str(source),
        "--out",
        str(destination),
    )


async def test_a_file_in_the_envelope_format(live_pg: LiveServer, tmp_path: Path) -> None:
    ekms = Cli(live_pg.url)
    plain, sealed, back = tmp_path / "export.csv", tmp_path / "export.ekms", tmp_path / "back.csv"
    plain.write_bytes(os.urandom(3 * (1 << 20) + 5))
    made = await ekms(*_file("encrypt", plain, sealed), "-o", "json", roles=("writer",))
    assert json.loads(made.stdout) == {"out": str(sealed), "key_version": 1}
    assert sealed.read_bytes()[:4] == b"EKSE" and plain.read_bytes()[:64] not in sealed.read_bytes()
    # writer may seal, not open: nothing is written
    denied = await ekms(*_file("decrypt", sealed, back), roles=("writer",), code=1)
    assert "403" in denied.output and not back.exists()
    await ekms(*_file("decrypt", sealed, back), roles=APP)
    assert back.read_bytes() == plain.read_bytes()
    back.unlink()
    cut = tmp_path / "cut.ekms"
    cut.write_bytes(sealed.read_bytes()[: -(1 << 20)])  # the last segment (and more) gone
    failed = await ekms(*_file("decrypt", cut, back), roles=APP, code=1)
    assert "the envelope does not verify" in failed.output
    left = {p.name for p in tmp_path.iterdir()} - {"data"}  # the server's data dir, if made
    assert left == {"cut.ekms", "export.csv", "export.ekms"}  # no output, no temporary file


async def test_mac_and_verify(live_pg: LiveServer) -> None:
    ekms = Cli(live_pg.url)
    mac = (
        await ekms("mac", "alice@example.com", *FIELD, "--context", "idx", roles=APP)
    ).stdout.strip()
    again = (await ekms("mac", "alice@example.com", *FIELD, "--context", "idx", roles=APP)).stdout
    assert again.strip() == mac
    verified = await ekms(
        "mac", "alice@example.com", *FIELD, "--context", "idx", "--verify", mac, roles=APP
    )
    assert "verified (key version 1)" in verified.stdout
    await ekms(
        "mac", "bob@example.com", *FIELD, "--context", "idx", "--verify", mac, roles=APP, code=1
    )
    await ekms("mac", "alice@example.com", *FIELD, roles=("writer",), code=1)


async def test_usage_errors(live_pg: LiveServer, tmp_path: Path) -> None:
    ekms = Cli(live_pg.url)
    assert "name a target" in (await ekms("encrypt", "x", roles=APP, code=1)).output
    half = await ekms("encrypt", "--module", MODULE, "--in", str(tmp_path), roles=APP, code=1)
    assert "--in and --out go together" in half.output
    nothing = await ekms("encrypt", "--module", MODULE, roles=APP, code=1)
    assert "give a value" in nothing.output
