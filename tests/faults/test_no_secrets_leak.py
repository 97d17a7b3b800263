"""No key material, token or protected value in any log line, error body, metric or table.

A realistic session runs against a real ``ekms serve`` (Postgres, moto's KMS, DEBUG logs in the
production JSON form, captured to a file) over REST and gRPC: configuration, two modules and
one with ``external_wrap=false`` (its DEKs under the local KEK), fields, policies,
encrypt/decrypt/rewrap/batches/streams, key rotation, suspend/resume, revoke, destroy, KEK
rotation, the local KEK's rotation, the EKEK rewrap after an external rotation, a restart, and
every kind of error (bad, expired, forged and unprivileged tokens, unknown names, conflicts, bad
bodies, oversized bodies, wrong content types, ciphertexts that do not verify).

Then it reconstructs every secret it can: each KEK (every EKEK row decrypted through moto with
the EncryptionContext stored on the row), the local root key and the local KEK (unwrapped by
it, each one the session saw), each DEK (unwrapped with its KEK, snapshots taken
before any destroy), every token it sent and its signature, the HS256 secret, and the protected
plaintexts. It scans the log file, every HTTP error body and gRPC error, ``/metrics`` and a dump
of every table for each secret as raw bytes, hex (both cases), and standard and URL-safe base64
with and without padding.

Every response must also carry the security headers and no CORS grant, although every request
names a foreign ``Origin``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb
from ekms_client.gen.ekms.v1 import crypto_pb2_grpc as pb_grpc

from app.application.local_kek import LOCAL_KEK_REF
from app.domain.audit_checkpoint import AuditSigner, seal_purpose
from app.domain.keys import KeyEncryptionKey
from app.infra.db.engine import create_engine
from app.infra.kms.local import LocalKms
from tests.faults.support import (
    ADMIN_ROLES,
    APP_ROLE,
    SECRET,
    EkmsProcess,
    OwnKms,
    ekms_env,
    query,
    token,
)
from tests.fixtures.db import dump_all_tables

PAYROLL, LOOKUP, LOCAL = "global.payroll", "global.lookup", "global.localwrap"
ROOT_KEY = os.urandom(32)
FOREIGN_ORIGIN = "https://evil.example"
SECURITY_HEADERS = (
    "x-content-type-options",
    "x-frame-options",
    "content-security-policy",
    "referrer-policy",
    "cache-control",
)
HSTS = "strict-transport-security"  # only over TLS; this test speaks plain HTTP


def forms(secret: bytes) -> dict[str, bytes]:
    """The encodings a secret could leak in."""
    std, url = base64.b64encode(secret), base64.urlsafe_b64encode(secret)
    return {
        "raw": secret,
        "hex": secret.hex().encode(),
        "HEX": secret.hex().upper().encode(),
        "base64": std,
        "base64 unpadded": std.rstrip(b"="),
        "base64url": url,
        "base64url unpadded": url.rstrip(b"="),
    }


@dataclass
class Secrets:
    items: dict[str, bytes] = field(default_factory=dict)

    def add(self, name: str, value: bytes | str) -> None:
        self.items[name] = value.encode() if isinstance(value, str) else value

    def token(self, sub: str, *roles: str, ttl: int = 3600) -> str:
        value = token(sub, *roles, ttl=ttl)
        self.add(f"token {sub}", value)
        self.add(f"token {sub} signature", value.rsplit(".", 1)[1])
        return value

    def scan(self, where: str, haystack: bytes) -> list[str]:
        return [
            f"{name} as {form} in {where}"
            for name, secret in self.items.items()
            for form, needle in forms(secret).items()
            if needle in haystack
        ]


@dataclass
class Recorder:
    """An httpx client that sends a foreign Origin and keeps every response it got."""

    url: str
    responses: list[httpx.Response] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = httpx.Client(
            base_url=self.url,
            timeout=30,
            headers={"Origin": FOREIGN_ORIGIN},
            event_hooks={"response": [self._keep]},
        )

    def _keep(self, response: httpx.Response) -> None:
        response.read()
        self.responses.append(response)

    def call(self, method: str, path: str, auth: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {auth}"} if auth else {}
        return self.client.request(method, path, headers={**headers, **kw.pop("headers", {})}, **kw)

    def ok(self, method: str, path: str, auth: str | None = None, **kw: Any) -> Any:
        r = self.call(method, path, auth, **kw)
        assert r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json() if r.content else None

    def errors(self) -> Iterable[httpx.Response]:
        return (r for r in self.responses if r.status_code >= 400)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def reconstruct_keys(pg_url: str, kms: OwnKms, secrets: Secrets, label: str) -> dict:
    """Every KEK (through the KMS) and every DEK that still has material, added to secrets."""
    keks: dict[Any, KeyEncryptionKey] = {}
    for row in query(pg_url, "SELECT * FROM external_instance_keys"):
        context = row["encryption_context"]
        context = json.loads(context) if isinstance(context, str) else dict(context)
        raw = kms.admin.decrypt(
            CiphertextBlob=bytes(row["wrapped_kek"]), EncryptionContext=context
        )["Plaintext"]
        secrets.add(f"KEK {row['id']}", raw)
        keks[row["id"]] = KeyEncryptionKey(row["id"], raw)
    local_keks = 0
    for row in query(pg_url, "SELECT * FROM local_instance_keys"):
        context = row["encryption_context"]
        context = json.loads(context) if isinstance(context, str) else dict(context)
        root = LocalKms(LOCAL_KEK_REF, ROOT_KEY)
        raw = asyncio.run(root.unwrap(bytes(row["wrapped_kek"]), context))
        local = KeyEncryptionKey(row["id"], raw)
        assert local.fingerprint == row["fingerprint"]
        secrets.add(f"KEK local {row['id']}", raw)
        keks[row["id"]] = local
        local_keks += 1
    deks = local_deks = 0
    for row in query(pg_url, "SELECT * FROM module_keys WHERE wrapped_dek IS NOT NULL"):
        local_deks += row["local_kek_id"] is not None
        dek = keks[row["local_kek_id"] or row["kek_id"]].unwrap(
            bytes(row["wrapped_dek"]), row["module_id"], row["version"]
        )
        secrets.add(f"DEK {row['module_id']} v{row['version']}", dek)
        deks += 1
    seeds = 0
    for row in query(pg_url, "SELECT * FROM audit_signing_keys"):
        public_key = bytes(row["public_key"])
        seed = keks[row["kek_id"]].unseal(
            bytes(row["wrapped_seed"]), seal_purpose(row["id"], public_key)
        )
        assert AuditSigner(row["id"], seed).public_key == public_key
        secrets.add(f"audit signing seed {row['id']}", seed)
        seeds += 1
    return {
        "at": label,
        "keks": len(keks),
        "local_keks": local_keks,
        "deks": deks,
        "local_deks": local_deks,
        "signing_seeds": seeds,
    }


def seal_local(rec: Recorder, svc: str, secrets: Secrets, tag: str) -> list[tuple[str, bytes]]:
    """Two values sealed by the module under the local KEK (``external_wrap=false``)."""
    sealed = []
    for i in range(2):
        value = b"LOCAL-SECRET-%s%d-%s" % (tag.encode(), i, os.urandom(8).hex().encode())
        secrets.add(f"plaintext local {tag}{i}", value)
        body = rec.ok(
            "POST", "/api/v1/crypto/encrypt", svc, json={"module": LOCAL, "plaintext": b64(value)}
        )
        sealed.append((body["ciphertext"], value))
    return sealed


def open_local(rec: Recorder, svc: str, sealed: list[tuple[str, bytes]]) -> None:
    for text, value in sealed:
        opened = rec.ok(
            "POST", "/api/v1/crypto/decrypt", svc, json={"module": LOCAL, "ciphertext": text}
        )
        assert base64.b64decode(opened["plaintext"]) == value


def grpc_session(node: EkmsProcess, secrets: Secrets, errors: list[bytes]) -> int:
    """Every RPC, good and bad; the bytes of every error (details and trailers) kept."""
    app = secrets.token("grpc-svc", APP_ROLE)
    md = (("authorization", f"Bearer {app}"),)
    calls = 0

    def fail(call: Any, *args: Any, **kwargs: Any) -> None:
        try:
            result = call(*args, **kwargs)
            if hasattr(result, "__iter__") and not hasattr(result, "ByteSize"):
                list(result)
        except grpc.RpcError as err:
            errors.append((err.details() or "").encode())
            for key, value in err.trailing_metadata() or ():
                errors.append(
                    key.encode() + b"=" + (value if isinstance(value, bytes) else value.encode())
                )
            assert err.code() is not grpc.StatusCode.INTERNAL, err.details()
        else:
            raise AssertionError("the call was expected to fail")

    with grpc.insecure_channel(node.grpc_address) as channel:
        stub = pb_grpc.CryptoStub(channel)
        field = pb.Target(field=pb.Field(table="employees", column="iban"))
        secret_value = b"IBAN DE89 3704 0044 0532 0130 00 (grpc)"
        secrets.add("plaintext grpc", secret_value)
        sealed = stub.Encrypt(
            pb.EncryptRequest(target=field, plaintext=secret_value, context=b"emp-7"), metadata=md
        )
        assert (
            stub.Decrypt(
                pb.DecryptRequest(target=field, ciphertext=sealed.ciphertext, context=b"emp-7"),
                metadata=md,
            ).plaintext
            == secret_value
        )
        stub.Rewrap(
            pb.RewrapRequest(target=field, ciphertext=sealed.ciphertext, context=b"emp-7"),
            metadata=md,
        )
        batch = stub.EncryptBatch(
            pb.EncryptBatchRequest(
                target=pb.Target(module=LOOKUP),
                items=[pb.EncryptItem(id=str(i), plaintext=secret_value) for i in range(5)]
                + [pb.EncryptItem(id="bad", target=pb.Target(module="Bad Name"))],
            ),
            metadata=md,
        )
        stub.DecryptBatch(
            pb.DecryptBatchRequest(
                target=pb.Target(module=LOOKUP),
                items=[pb.DecryptItem(id=r.id, ciphertext=r.ciphertext) for r in batch.results]
                + [pb.DecryptItem(id="garbage", ciphertext=b"\x01\x01" + os.urandom(40))],
            ),
            metadata=md,
        )
        for result in batch.results:  # per-item errors are error bodies too
            errors.append(result.status.SerializeToString())
        list(
            stub.EncryptStream(
                iter([pb.EncryptItem(id="s1", target=field, plaintext=secret_value, context=b"c")]),
                metadata=md,
            )
        )
        calls += 6
        forged = app[:-3] + ("AAA" if not app.endswith("AAA") else "BBB")
        for metadata in (
            (),
            (("authorization", f"Bearer {forged}"),),
            (("authorization", "Bearer x.y.z"),),
        ):
            fail(stub.Encrypt, pb.EncryptRequest(target=field, plaintext=b"x"), metadata=metadata)
        fail(
            stub.Decrypt,
            pb.DecryptRequest(target=field, ciphertext=sealed.ciphertext, context=b"emp-8"),
            metadata=md,
        )
        fail(
            stub.Decrypt,
            pb.DecryptRequest(target=pb.Target(module="global.nothing"), ciphertext=b"x"),
            metadata=md,
        )
        fail(
            stub.Encrypt,
            pb.EncryptRequest(target=field, plaintext=b"x", context=b"c" * 5000),
            metadata=md,
        )
        unprivileged = secrets.token("grpc-stranger", "marketing")
        fail(
            stub.Decrypt,
            pb.DecryptRequest(target=field, ciphertext=sealed.ciphertext, context=b"emp-7"),
            metadata=(("authorization", f"Bearer {unprivileged}"),),
        )
        calls += 7
    return calls


@pytest.mark.timeout(240)
def test_a_realistic_session_leaks_no_key_material_or_token(
    pg_url: str, aws_env: str, own_kms: OwnKms, tmp_path: Path
) -> None:
    secrets = Secrets()
    secrets.add("HS256 secret", SECRET)
    secrets.add("local root key", ROOT_KEY)
    key_id = own_kms.create_key()
    node = EkmsProcess(
        "leak-check",
        ekms_env(
            pg_url,
            own_kms.url,
            aws_env,
            tmp_path / "data",
            EKMS_LOG_LEVEL="DEBUG",
            EKMS_LOG_JSON="true",
            EKMS_SCHEDULER_TICK_SECONDS="1",
            EKMS_AUDIT_CHECKPOINT_SECONDS="1",  # a signed checkpoint, hence a signing seed
            EKMS_LOCAL_ROOT_KEY=b64(ROOT_KEY),
        ),
        tmp_path / "ekms.log",
    )
    admin = secrets.token("admin", *ADMIN_ROLES)
    svc = secrets.token("svc", APP_ROLE)
    snapshots: list[dict] = []
    grpc_errors: list[bytes] = []
    node.start()
    try:
        rec = Recorder(node.url)
        # --- configuration, modules, fields, policies --------------------------------------
        rec.ok("PUT", "/api/v1/ekms/config", admin, json={"provider": "aws", "key_id": key_id})
        rec.ok("POST", "/api/v1/ekms/config/test", admin)
        rec.ok("POST", "/api/v1/modules", admin, json={"name": PAYROLL})
        rec.ok("POST", "/api/v1/modules", admin, json={"name": LOOKUP, "algorithm": "AES-256-SIV"})
        rec.ok("POST", "/api/v1/modules", admin, json={"name": LOCAL, "external_wrap": False})
        policy = {
            "target_type": "role",
            "target": APP_ROLE,
            "operations": ["encrypt", "decrypt", "rewrap"],
            "result": "track",
        }
        for module in (PAYROLL, LOOKUP, LOCAL):
            rec.ok("POST", f"/api/v1/modules/{module}/policies", admin, json=policy)
        for column, module in (("iban", PAYROLL), ("email", LOOKUP)):
            rec.ok(
                "POST",
                "/api/v1/field-configs",
                admin,
                json={"table": "employees", "column": column, "module": module},
            )
        # --- the data plane over REST ---------------------------------------------------------
        sealed = []
        for i in range(6):
            value = b"SECRET-VALUE-%d-%s" % (i, os.urandom(8).hex().encode())
            secrets.add(f"plaintext {i}", value)
            target = {"table": "employees", "column": "iban" if i % 2 else "email"}
            body = rec.ok(
                "POST",
                "/api/v1/crypto/encrypt",
                svc,
                json={**target, "plaintext": b64(value), "context": b64(b"row-%d" % i)},
            )
            sealed.append((target, body["ciphertext"], b"row-%d" % i, value))
        for target, text, context, value in sealed:
            opened = rec.ok(
                "POST",
                "/api/v1/crypto/decrypt",
                svc,
                json={**target, "ciphertext": text, "context": b64(context)},
            )
            assert base64.b64decode(opened["plaintext"]) == value
        local_sealed = seal_local(rec, svc, secrets, "a")
        rec.ok("POST", f"/api/v1/modules/{LOCAL}/keys/rotate", admin)
        local_sealed += seal_local(rec, svc, secrets, "b")
        grpc_calls = grpc_session(node, secrets, grpc_errors)
        snapshots.append(reconstruct_keys(pg_url, own_kms, secrets, "after setup"))
        # --- key lifecycle ----------------------------------------------------------------------
        rec.ok("POST", f"/api/v1/modules/{PAYROLL}/keys/rotate", admin)
        rec.ok("POST", f"/api/v1/modules/{PAYROLL}/keys/1/suspend", admin)
        rec.ok("POST", f"/api/v1/modules/{PAYROLL}/keys/1/resume", admin)
        rec.ok("POST", f"/api/v1/modules/{LOOKUP}/keys/1/revoke", admin, json={"reason": "test"})
        snapshots.append(reconstruct_keys(pg_url, own_kms, secrets, "before destroy"))
        rec.ok("POST", f"/api/v1/modules/{PAYROLL}/keys/1/destroy", admin)
        rec.ok("POST", "/api/v1/ekms/kek/rotate", admin)
        rec.ok("POST", "/api/v1/ekms/local-kek/rotate", admin)  # the old one must be gone
        open_local(rec, svc, local_sealed)
        own_kms.admin.rotate_key_on_demand(KeyId=key_id)
        assert rec.ok("POST", "/api/v1/ekms/sync", admin)["rewrapped"] is True
        for path in (
            "/api/v1/ekms/status",
            "/api/v1/ekms/config",
            f"/api/v1/modules/{PAYROLL}/keys",
            "/api/v1/audit",
            "/api/v1/field-configs",
        ):
            rec.ok("GET", path, admin)
        # --- every kind of error ------------------------------------------------------------------
        expired = jwt.encode(
            {"sub": "expired", "roles": list(ADMIN_ROLES), "exp": int(time.time()) - 3600},
            SECRET,
            algorithm="HS256",
        )
        secrets.add("token expired", expired)
        forged = admin[:-4] + ("AAAA" if not admin.endswith("AAAA") else "BBBB")
        target, text, context, _ = sealed[1]
        for method, path, auth, kw in (
            ("GET", "/api/v1/modules", None, {}),
            ("GET", "/api/v1/modules", expired, {}),
            ("GET", "/api/v1/modules", forged, {}),
            ("GET", "/api/v1/modules", "not-a-token", {}),
            ("GET", "/api/v1/audit", svc, {}),
            ("GET", "/api/v1/modules/global.nothing", admin, {}),
            ("POST", "/api/v1/modules", admin, {"json": {"name": PAYROLL}}),
            ("POST", "/api/v1/modules", admin, {"json": {"name": "Not Valid"}}),
            ("PUT", "/api/v1/ekms/config", admin, {"json": {"provider": "aws", "key_id": "other"}}),
            (
                "POST",
                "/api/v1/crypto/decrypt",
                svc,
                {"json": {**target, "ciphertext": text, "context": b64(b"wrong")}},
            ),
            (
                "POST",
                "/api/v1/crypto/decrypt",
                svc,
                {"json": {**target, "ciphertext": "ekms:v1:AAAA"}},
            ),
            (
                "POST",
                "/api/v1/crypto/decrypt",
                svc,
                {"json": {"module": PAYROLL, "ciphertext": sealed[0][1]}},
            ),
            (
                "POST",
                "/api/v1/crypto/encrypt",
                svc,
                {"json": {"module": PAYROLL, "plaintext": "%%%"}},
            ),
            (
                "POST",
                "/api/v1/crypto/encrypt",
                secrets.token("stranger", "marketing"),
                {"json": {"module": PAYROLL, "plaintext": b64(b"x")}},
            ),
            (
                "POST",
                "/api/v1/crypto/encrypt",
                svc,
                {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            ),
            (
                "POST",
                "/api/v1/crypto/encrypt",
                svc,
                {"content": b"x=1", "headers": {"Content-Type": "text/plain"}},
            ),
            (
                "POST",
                "/api/v1/crypto/encrypt",
                svc,
                {
                    "content": b"x" * (3 * 1024 * 1024),
                    "headers": {"Content-Type": "application/json"},
                },
            ),
            ("POST", f"/api/v1/modules/{PAYROLL}/keys/1/destroy", admin, {}),
            ("POST", f"/api/v1/modules/{PAYROLL}/keys/99/suspend", admin, {}),
        ):
            assert rec.call(method, path, auth, **kw).status_code >= 400, (method, path)
        # --- a restart: the startup path unwraps the KEK again ------------------------------------
        node.stop()
        node.start()
        node.wait_ready(30)
        target, text, context, value = sealed[2]  # LOOKUP v1: revoked, still decrypts
        opened = rec.ok(
            "POST",
            "/api/v1/crypto/decrypt",
            svc,
            json={**target, "ciphertext": text, "context": b64(context)},
        )
        assert base64.b64decode(opened["plaintext"]) == value
        open_local(rec, svc, local_sealed)
        for path in ("/livez", "/readyz", "/openapi.json", "/docs"):
            assert rec.call("GET", path).status_code == 200, path
        assert rec.call("GET", "/metrics").status_code == 404  # finding 8: not on the public port
        metrics = node.metrics().content
        snapshots.append(reconstruct_keys(pg_url, own_kms, secrets, "at the end"))
    finally:
        node.stop()

    async def dump() -> bytes:
        engine = create_engine(pg_url)
        try:
            return await dump_all_tables(engine)
        finally:
            await engine.dispose()

    tables = asyncio.run(dump())
    log = node.log.read_bytes()
    error_bodies = [r.content for r in rec.errors()]
    leaks = secrets.scan("the log", log) + secrets.scan("/metrics", metrics)
    leaks += secrets.scan("the table dump", tables)
    for n, body in enumerate(error_bodies):
        leaks += secrets.scan(f"HTTP error body {n}", body)
    for n, body in enumerate(grpc_errors):
        leaks += secrets.scan(f"gRPC error {n}", body)

    headerless = [
        (r.request.method, r.request.url.path, name)
        for r in rec.responses
        for name in SECURITY_HEADERS
        if name not in r.headers
        # The docs may be cached (middleware: no-store everywhere but the docs).
        and not (name == "cache-control" and r.request.url.path in ("/docs", "/openapi.json"))
    ]
    cors = [
        (r.request.url.path, k)
        for r in rec.responses
        for k in r.headers
        if k.lower().startswith("access-control-")
    ]
    servers = {r.headers.get("server") for r in rec.responses}
    hsts_in_clear = [r.request.url.path for r in rec.responses if HSTS in r.headers]

    kinds = {name.split(" ")[0] for name in secrets.items}
    lines = log.count(b"\n")
    print(
        f"{len(secrets.items)} secrets ({', '.join(sorted(kinds))}) x {len(forms(b'x'))} encodings "
        f"scanned in a {len(log)} byte log ({lines} lines), {len(error_bodies)} HTTP "
        f"error bodies, {len(grpc_errors)} gRPC error parts, {len(metrics)} bytes of /metrics and "
        f"a {len(tables)} byte table dump; {len(rec.responses)} HTTP responses, {grpc_calls} "
        f"gRPC calls; key snapshots {snapshots}"
    )
    assert len([n for n in secrets.items if n.startswith("KEK")]) >= 2
    assert len([n for n in secrets.items if n.startswith("DEK")]) >= 4
    assert len([n for n in secrets.items if n.startswith("KEK local")]) == 2  # before, after
    assert snapshots[-1]["local_deks"] == 2  # the local module's two versions
    assert snapshots[-1]["signing_seeds"] == 1  # one signing key, resealed by the KEK rotation
    assert len(error_bodies) >= 19
    assert leaks == [], leaks
    assert headerless == [], headerless
    assert hsts_in_clear == [], hsts_in_clear
    assert cors == [], cors
    assert servers == {None}, servers


@pytest.mark.parametrize(
    "json_form",
    [
        pytest.param(False, id="console"),
        pytest.param(True, id="json"),
    ],
)
def test_a_logged_exception_prints_no_local_values(json_form: bool) -> None:
    """In a child process (logging is process-wide): a frame holding key bytes raises, and the
    exception is logged the way app/api/middleware.py logs an unhandled error."""
    script = f"""
import os, sys, structlog
from app.infra.logging import configure_logging
configure_logging("INFO", json={json_form})
key_bytes = os.urandom(32)
print(key_bytes.hex())
def unwrap(raw):
    raise ValueError("something broke")
try:
    unwrap(key_bytes)
except ValueError:
    structlog.get_logger("ekms.http").exception("unhandled_error")
"""
    done = subprocess.run(  # noqa: S603 - our own interpreter, a fixed script
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=True
    )
    key_bytes = bytes.fromhex(done.stdout.decode().strip())
    secrets = Secrets()
    secrets.add("a local key", key_bytes)
    assert b"unhandled_error" in done.stderr
    assert secrets.scan("the log", done.stderr) == []
    assert repr(key_bytes)[:24].encode() not in done.stderr, "a local variable was printed"
