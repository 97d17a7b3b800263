"""``ekms rewrap --in values.ndjson --out rewrapped.ndjson`` against a real uvicorn on Postgres:
a column export moves to the active key version in batches, other fields kept, a value that
fails is marked and ends the run with 1, and a run cut short resumes where it stopped."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.rest_support import (
    APP_ROLE,
    KEY_MANAGER,
    MODULE,
    Cli,
    LiveServer,
    auth,
    serve,
    settings_for,
)

APP = (APP_ROLE,)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
async def export(pg_url: str, tmp_path: Path) -> AsyncIterator[tuple[LiveServer, Path, list[str]]]:
    """A live server, and an export of six values sealed under v1 of a module now at v2."""
    async with serve(settings_for(pg_url, tmp_path / "data")) as live:
        async with httpx.AsyncClient(base_url=live.url) as http:
            for path, body in [
                ("/api/v1/modules", {"name": MODULE}),
                (
                    f"/api/v1/modules/{MODULE}/policies",
                    {
                        "target_type": "role",
                        "target": APP_ROLE,
                        "operations": ["encrypt", "decrypt", "rewrap"],
                        "result": "track",
                    },
                ),
            ]:
                answer = await http.post(path, json=body, headers=auth("ekms.admin"))
                assert answer.status_code < 300, answer.text
            sealed = []
            for n in range(6):
                answer = await http.post(
                    "/api/v1/crypto/encrypt",
                    json={
                        "module": MODULE,
                        "plaintext": _b64(f"salary-{n}".encode()),
                        "context": _b64(f"emp-{n}".encode()),
                    },
                    headers=auth(APP_ROLE),
                )
                assert answer.status_code == 200, answer.text
                sealed.append(answer.json()["ciphertext"])
            rotated = await http.post(
                f"/api/v1/modules/{MODULE}/keys/rotate", headers=auth(KEY_MANAGER)
            )
            assert rotated.status_code < 300, rotated.text
        lines = [
            json.dumps({"row": n, "ciphertext": c, "context": _b64(f"emp-{n}".encode())})
            for n, c in enumerate(sealed)
        ]
        lines[4] = json.dumps({"row": 4, "ciphertext": sealed[4], "context": _b64(b"emp-x")})
        source = tmp_path / "values.ndjson"
        source.write_text("\n".join(lines) + "\n")
        yield live, source, sealed


async def _opens(live: LiveServer, ciphertext: str, row: int) -> str:
    async with httpx.AsyncClient(base_url=live.url, headers=auth(APP_ROLE)) as http:
        answer = await http.post(
            "/api/v1/crypto/decrypt",
            json={
                "module": MODULE,
                "ciphertext": ciphertext,
                "context": _b64(f"emp-{row}".encode()),
            },
        )
    assert answer.status_code == 200, answer.text
    return base64.b64decode(answer.json()["plaintext"]).decode()


async def test_an_export_moves_to_the_active_version_and_a_cut_run_resumes(
    export: tuple[LiveServer, Path, list[str]], tmp_path: Path
) -> None:
    live, source, sealed = export
    ekms = Cli(live.url)
    out = tmp_path / "rewrapped.ndjson"
    args = ("rewrap", "--in", str(source), "--out", str(out), "--module", MODULE, "--batch", "2")

    first = await ekms(*args, "-o", "json", roles=APP, code=1)  # one value does not open
    moved = [json.loads(line) for line in out.read_text().splitlines()]

    summary = json.loads(first.stdout)
    assert (summary["written"], summary["changed"], summary["failed"]) == (5, 5, 1)
    assert [m["row"] for m in moved] == list(range(6))  # every line, in order, fields kept
    for m in moved:
        if m["row"] == 4:  # the wrong context: marked, its ciphertext kept
            assert m["error"]["reason"] == "DECRYPTION_FAILED" and m["ciphertext"] == sealed[4]
            continue
        assert m["changed"] is True and m["key_version"] == 2
        assert m["ciphertext"] != sealed[m["row"]]
        assert await _opens(live, m["ciphertext"], m["row"]) == f"salary-{m['row']}"

    # A run cut short after two lines and a half: the half line goes, the rest is done again.
    whole = out.read_text().splitlines(keepends=True)
    out.write_text("".join(whole[:2]) + whole[2][:10])
    again = await ekms(*args, "-o", "json", roles=APP, code=1)
    resumed = json.loads(again.stdout)
    assert resumed["resumed_after"] == 2 and resumed["written"] + resumed["failed"] == 4
    assert out.read_text().splitlines()[:2] == [line.rstrip("\n") for line in whole[:2]]
    assert [json.loads(line)["row"] for line in out.read_text().splitlines()] == list(range(6))

    # Run again over a finished output: nothing is left to do, nothing is sent.
    done = await ekms(*args, "-o", "json", roles=APP)
    assert json.loads(done.stdout)["resumed_after"] == 6


async def test_usage_errors_change_nothing(
    export: tuple[LiveServer, Path, list[str]], tmp_path: Path
) -> None:
    live, source, _ = export
    ekms = Cli(live.url)
    out = tmp_path / "out.ndjson"
    same = await ekms("rewrap", "--in", str(source), "--out", str(source), roles=APP, code=1)
    batch = await ekms(
        "rewrap", "--in", str(source), "--out", str(out), "--batch", "0", roles=APP, code=1
    )
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"row": 1}\n')
    missing = await ekms("rewrap", "--in", str(bad), "--out", str(out), roles=APP, code=1)
    assert "another file" in same.output
    assert "--batch" in batch.output
    assert '"ciphertext"' in missing.output
    assert not out.exists() or out.read_text() == ""
