"""A ciphertext replayed into another field, another record context or another module is
refused with the one opaque DECRYPTION_FAILED, over REST and over gRPC (single calls, batches
and rewrap alike), while the genuine target and context still open it.

The ciphertext binds its field (``table.column``) or module name and the caller's context into
the AEAD's associated data (docs/ciphertext-format.md); these tests hold the service to it.
"""

from __future__ import annotations

import base64

import grpc
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb

from app.application.field_configs import FieldConfigInput, create_field_config
from app.application.modules import ModuleInput, create_module
from app.application.policies import PolicyInput, create_policy
from app.domain.values import AccessResult, Operation, TargetType
from tests.e2e.conftest import ADMIN, BILLING, Ekms, error_info, field_target, item_reason
from tests.e2e.rest_support import MODULE, Rest, b64
from tests.e2e.rest_support import rest as rest  # noqa: F401 - fixture

REFUSED = (grpc.StatusCode.INVALID_ARGUMENT, "DECRYPTION_FAILED")
OTHER = "global.other"


async def test_grpc_replays_into_another_field_context_or_module_are_refused(ekms: Ekms) -> None:
    ctx = ekms.container.ctx
    await create_module(ctx, ADMIN, ModuleInput(OTHER))
    await create_policy(
        ctx,
        ADMIN,
        OTHER,
        PolicyInput(TargetType.ROLE, "billing", frozenset(Operation), AccessResult.TRACK),
    )
    await create_field_config(ctx, ADMIN, FieldConfigInput("employees", "bonus", OTHER))
    md = ekms.auth("billing-svc", "billing")
    salary = field_target("employees", "salary")
    sealed = await ekms.stub.Encrypt(
        pb.EncryptRequest(target=salary, plaintext=b"85000", context=b"emp-1"), metadata=md
    )
    blob = sealed.ciphertext
    by_module = (
        await ekms.stub.Encrypt(
            pb.EncryptRequest(target=pb.Target(module=BILLING), plaintext=b"m", context=b"emp-1"),
            metadata=md,
        )
    ).ciphertext

    replays = {
        "same module, other field": (field_target("employees", "legacy"), blob, b"emp-1"),
        "same module, by module name": (pb.Target(module=BILLING), blob, b"emp-1"),
        "other module's field": (field_target("employees", "bonus"), blob, b"emp-1"),
        "other module by name": (pb.Target(module=OTHER), blob, b"emp-1"),
        "other record context": (salary, blob, b"emp-2"),
        "no context": (salary, blob, b""),
        "module ciphertext as a field": (salary, by_module, b"emp-1"),
    }
    for name, (target, data, context) in replays.items():
        for call in (
            ekms.stub.Decrypt(
                pb.DecryptRequest(target=target, ciphertext=data, context=context), metadata=md
            ),
            ekms.stub.Rewrap(
                pb.RewrapRequest(target=target, ciphertext=data, context=context), metadata=md
            ),
        ):
            try:
                await call
            except grpc.aio.AioRpcError as err:
                assert error_info(err) == REFUSED, name
            else:
                raise AssertionError(f"{name}: a replayed ciphertext was accepted")
    batch = await ekms.stub.DecryptBatch(
        pb.DecryptBatchRequest(
            items=[
                pb.DecryptItem(id=name, target=t, ciphertext=d, context=c)
                for name, (t, d, c) in replays.items()
            ]
            + [pb.DecryptItem(id="genuine", target=salary, ciphertext=blob, context=b"emp-1")]
        ),
        metadata=md,
    )
    *refused, genuine = batch.results
    assert [item_reason(r.status) for r in refused] == [REFUSED] * len(replays)
    assert (genuine.id, genuine.plaintext) == ("genuine", b"85000")


async def test_rest_replays_into_another_field_context_or_module_are_refused(
    rest: Rest,  # noqa: F811
) -> None:
    await rest.seed()  # module global.payroll, role payroll, field employees.iban
    await rest.ok("POST", "/api/v1/modules", json={"name": "global.hr"})
    await rest.ok(
        "POST",
        "/api/v1/modules/global.hr/policies",
        json={
            "target_type": "role",
            "target": "payroll",
            "operations": ["encrypt", "decrypt"],
            "result": "track",
        },
    )
    for table, column, module in (("employees", "bic", MODULE), ("employees", "name", "global.hr")):
        await rest.ok(
            "POST",
            "/api/v1/field-configs",
            json={"table": table, "column": column, "module": module},
        )
    iban = {"table": "employees", "column": "iban"}
    sealed = await rest.ok(
        "POST",
        "/api/v1/crypto/encrypt",
        ("payroll",),
        json={**iban, "plaintext": b64(b"DE89 3704"), "context": b64(b"emp-1")},
    )
    text = sealed["ciphertext"]
    replays = {
        "same module, other field": ({"table": "employees", "column": "bic"}, b"emp-1"),
        "same module, by module name": ({"module": MODULE}, b"emp-1"),
        "other module's field": ({"table": "employees", "column": "name"}, b"emp-1"),
        "other module by name": ({"module": "global.hr"}, b"emp-1"),
        "other record context": (iban, b"emp-2"),
        "no context": (iban, b""),
    }
    for name, (target, context) in replays.items():
        response = await rest.call(
            "POST",
            "/api/v1/crypto/decrypt",
            ("payroll",),
            json={**target, "ciphertext": text, "context": b64(context)},
        )
        assert response.status_code == 400, (name, response.text)
        assert response.json()["reason"] == "DECRYPTION_FAILED", name
    genuine = await rest.ok(
        "POST",
        "/api/v1/crypto/decrypt",
        ("payroll",),
        json={**iban, "ciphertext": text, "context": b64(b"emp-1")},
    )
    assert base64.b64decode(genuine["plaintext"]) == b"DE89 3704"
