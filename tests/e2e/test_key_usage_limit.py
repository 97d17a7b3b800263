"""Finding 5 over real gRPC: with ``encryption_count`` at 2^32+10 and the scheduler off (as in
the e2e settings), encrypts on that version are refused; rotation makes the module serve again."""

from __future__ import annotations

import grpc
import pytest
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb

from app.application.configuration import get_status
from app.application.modules import rotate_module_key
from app.domain.module import key_usage_alert_kind
from tests.e2e.conftest import ADMIN, BILLING, Ekms, error_info, item_reason, module_target

REFUSED = (grpc.StatusCode.FAILED_PRECONDITION, "KEY_USAGE_LIMIT_REACHED")


async def test_past_2_32_gcm_encryptions_every_encrypt_is_refused(ekms: Ekms) -> None:
    ctx = ekms.container.ctx
    assert not ekms.container.settings.scheduler_enabled
    async with ctx.uow() as uow:
        module = await uow.modules.get_by_name(BILLING)
        assert module is not None
        await uow.keys.add_usage({(module.id, 1): 2**32 + 10})
        await uow.commit()
    md = ekms.auth("billing-svc", "billing")
    request = pb.EncryptRequest(target=module_target(), plaintext=b"one more")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ekms.stub.Encrypt(request, metadata=md)
    assert error_info(err.value) == REFUSED
    items = [pb.EncryptItem(id=str(i), plaintext=b"x") for i in range(50)]
    batch = await ekms.stub.EncryptBatch(
        pb.EncryptBatchRequest(target=module_target(), items=items), metadata=md
    )
    assert {item_reason(r.status) for r in batch.results} == {REFUSED}
    assert not any(r.ciphertext for r in batch.results)
    status = await get_status(ctx)
    assert key_usage_alert_kind(module.id, 1) in {a.kind for a in status.open_alerts}

    await rotate_module_key(ctx, ADMIN, BILLING)
    sealed = await ekms.stub.Encrypt(request, metadata=md)
    assert sealed.key_version == 2
