"""AwsKms / AwsKmsConnector against moto's KMS server over real HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.application.ports import ExternalKeyRef
from app.domain.errors import (
    DecryptionFailed,
    InvalidInput,
    KeyUnavailable,
    Reason,
    ServiceUnavailable,
)
from app.domain.values import ExternalKeyStatus, KmsProvider
from app.infra.kms.aws import AwsKms, AwsKmsConnector
from tests.fixtures.kms import AWS_TEST_REGION, SilentEndpoint, isolate_aws_env

pytestmark = pytest.mark.kms

CONTEXT = {"ekms:instance": "test-instance", "ekms:kek": "kek-1"}
SECRET = bytes(range(32))


def aws_ref(key_id: str, **kwargs: Any) -> ExternalKeyRef:
    return ExternalKeyRef(provider=KmsProvider.AWS, key_id=key_id, **kwargs)


async def test_wrap_unwrap_round_trip_with_context(aws_kms: AwsKms, kms_key: str) -> None:
    wrapped = await aws_kms.wrap(SECRET, CONTEXT)

    assert wrapped.key_name.startswith("arn:aws:kms:") and wrapped.key_name.endswith(kms_key)
    assert SECRET not in wrapped.ciphertext
    assert SECRET.hex() not in repr(wrapped)
    assert await aws_kms.unwrap(wrapped.ciphertext, CONTEXT) == SECRET


async def test_wrong_context_fails_opaquely(aws_kms: AwsKms) -> None:
    wrapped = await aws_kms.wrap(SECRET, CONTEXT)

    with pytest.raises(DecryptionFailed) as info:
        await aws_kms.unwrap(wrapped.ciphertext, {**CONTEXT, "ekms:kek": "kek-2"})
    assert info.value.reason is Reason.DECRYPTION_FAILED
    with pytest.raises(DecryptionFailed):
        await aws_kms.unwrap(wrapped.ciphertext, {})


@pytest.mark.parametrize("garbage", [b"not a kms ciphertext", b"\x00"])
async def test_garbage_ciphertext_fails_opaquely(aws_kms: AwsKms, garbage: bytes) -> None:
    with pytest.raises(DecryptionFailed) as info:
        await aws_kms.unwrap(garbage, CONTEXT)
    assert garbage.hex() not in str(info.value)


async def test_tampered_ciphertext_fails_opaquely(aws_kms: AwsKms) -> None:
    blob = bytearray((await aws_kms.wrap(SECRET, CONTEXT)).ciphertext)
    blob[-1] ^= 0x01
    with pytest.raises(DecryptionFailed):
        await aws_kms.unwrap(bytes(blob), CONTEXT)
    with pytest.raises(DecryptionFailed):
        await aws_kms.rewrap(bytes(blob), CONTEXT)


async def test_empty_or_oversized_input_is_refused_before_the_call(aws_kms: AwsKms) -> None:
    with pytest.raises(InvalidInput):
        await aws_kms.wrap(b"", CONTEXT)
    with pytest.raises(InvalidInput):
        await aws_kms.wrap(b"x" * 4097, CONTEXT)
    with pytest.raises(DecryptionFailed):
        await aws_kms.unwrap(b"", CONTEXT)


async def test_rewrap_gives_a_new_blob_for_the_same_key(aws_kms: AwsKms, kms_key: str) -> None:
    wrapped = await aws_kms.wrap(SECRET, CONTEXT)

    rewrapped = await aws_kms.rewrap(wrapped.ciphertext, CONTEXT)

    assert rewrapped.ciphertext != wrapped.ciphertext
    assert rewrapped.key_name.endswith(kms_key)
    assert await aws_kms.unwrap(rewrapped.ciphertext, CONTEXT) == SECRET
    with pytest.raises(DecryptionFailed):
        await aws_kms.rewrap(wrapped.ciphertext, {"other": "context"})


async def test_describe_enabled_key(aws_kms: AwsKms, kms_key: str) -> None:
    description = await aws_kms.describe()

    assert description.status is ExternalKeyStatus.ENABLED
    assert description.key_name is not None and description.key_name.endswith(kms_key)
    assert description.deletion_date is None
    assert description.rotation_enabled is False
    assert description.reason is None


async def test_describe_reports_rotation_enabled(
    aws_kms: AwsKms, kms_admin: Any, kms_key: str
) -> None:
    kms_admin.enable_key_rotation(KeyId=kms_key)

    assert (await aws_kms.describe()).rotation_enabled is True


async def test_describe_follows_disable_and_enable(
    aws_kms: AwsKms, kms_admin: Any, kms_key: str
) -> None:
    kms_admin.disable_key(KeyId=kms_key)
    assert (await aws_kms.describe()).status is ExternalKeyStatus.DISABLED

    kms_admin.enable_key(KeyId=kms_key)
    assert (await aws_kms.describe()).status is ExternalKeyStatus.ENABLED


async def test_describe_pending_deletion_with_date_then_cancel(
    aws_kms: AwsKms, kms_admin: Any, kms_key: str
) -> None:
    before = datetime.now(UTC)
    kms_admin.schedule_key_deletion(KeyId=kms_key, PendingWindowInDays=7)

    pending = await aws_kms.describe()

    assert pending.status is ExternalKeyStatus.PENDING_DELETION
    assert pending.deletion_date is not None
    assert pending.deletion_date.tzinfo is not None
    assert pending.deletion_date.utcoffset() == timedelta(0)
    expected = before + timedelta(days=7)
    assert abs(pending.deletion_date - expected) < timedelta(minutes=5)

    kms_admin.cancel_key_deletion(KeyId=kms_key)
    cancelled = await aws_kms.describe()
    # KMS leaves a key whose deletion was cancelled disabled.
    assert cancelled.status is ExternalKeyStatus.DISABLED
    assert cancelled.deletion_date is None


async def test_describe_unknown_key_is_deleted(aws_connector: AwsKmsConnector) -> None:
    kms = aws_connector.connect(aws_ref("00000000-0000-4000-8000-000000000000"))

    description = await kms.describe()

    assert description.status is ExternalKeyStatus.DELETED
    assert description.key_name is None


async def test_operations_on_unknown_key_raise_deleted(aws_connector: AwsKmsConnector) -> None:
    kms = aws_connector.connect(aws_ref("alias/ekms-does-not-exist"))

    with pytest.raises(KeyUnavailable) as info:
        await kms.wrap(SECRET, CONTEXT)
    assert info.value.reason is Reason.EXTERNAL_KEY_DELETED
    assert isinstance(info.value.__cause__, Exception)  # raise ... from exc
    with pytest.raises(KeyUnavailable) as info:
        await kms.rotation_state()
    assert info.value.reason is Reason.EXTERNAL_KEY_DELETED


async def test_stopped_endpoint_is_unavailable_not_an_exception(
    aws_env: str, stopped_endpoint: str, kms_key: str
) -> None:
    connector = AwsKmsConnector(
        default_region=None,
        default_endpoint_url=stopped_endpoint,
        connect_timeout=0.5,
        read_timeout=0.5,
        max_attempts=1,
    )
    try:
        kms = connector.connect(aws_ref(kms_key))

        description = await kms.describe()
        assert description.status is ExternalKeyStatus.UNAVAILABLE
        assert description.reason is not None and "unreachable" in description.reason

        with pytest.raises(ServiceUnavailable) as info:
            await kms.wrap(SECRET, CONTEXT)
        assert info.value.reason is Reason.KMS_UNAVAILABLE
        assert SECRET.hex() not in str(info.value)
        with pytest.raises(ServiceUnavailable):
            await kms.rotation_state()
    finally:
        await connector.aclose()


async def test_silent_endpoint_times_out_as_unavailable(
    aws_env: str, silent_endpoint: SilentEndpoint
) -> None:
    connector = AwsKmsConnector(
        default_region=None,
        default_endpoint_url=silent_endpoint.url,
        connect_timeout=0.2,
        read_timeout=0.2,
        max_attempts=1,
    )
    try:
        kms = connector.connect(aws_ref("any-key"))

        description = await kms.describe()
        assert description.status is ExternalKeyStatus.UNAVAILABLE
        assert description.reason is not None and "timed out" in description.reason

        with pytest.raises(ServiceUnavailable) as info:
            await kms.unwrap(b"blob", CONTEXT)
        assert info.value.reason is Reason.KMS_UNAVAILABLE
    finally:
        await connector.aclose()


async def test_max_attempts_counts_the_first_try(
    aws_env: str, silent_endpoint: SilentEndpoint
) -> None:
    connector = AwsKmsConnector(
        default_region=None,
        default_endpoint_url=silent_endpoint.url,
        connect_timeout=0.2,
        read_timeout=0.1,
        max_attempts=2,
    )
    try:
        with pytest.raises(ServiceUnavailable):
            await connector.connect(aws_ref("any-key")).wrap(SECRET, CONTEXT)
    finally:
        await connector.aclose()
    # A timed-out connection is not reused, so each try opens one.
    assert silent_endpoint.accepted == 2


async def test_no_credentials_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, moto_server: str, kms_key: str
) -> None:
    isolate_aws_env(monkeypatch, str(tmp_path))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    connector = AwsKmsConnector(default_region=AWS_TEST_REGION, default_endpoint_url=moto_server)
    try:
        kms = connector.connect(aws_ref(kms_key))

        description = await kms.describe()
        assert description.status is ExternalKeyStatus.UNAVAILABLE
        assert description.reason is not None and "no AWS credentials" in description.reason

        with pytest.raises(KeyUnavailable) as info:
            await kms.wrap(SECRET, CONTEXT)
        assert info.value.reason is Reason.EXTERNAL_KEY_UNAVAILABLE
        assert "no AWS credentials" in info.value.message
    finally:
        await connector.aclose()


async def test_no_region_is_unavailable(
    aws_env: str, monkeypatch: pytest.MonkeyPatch, moto_server: str
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    connector = AwsKmsConnector(default_region=None, default_endpoint_url=moto_server)
    try:
        kms = connector.connect(aws_ref("any-key"))

        description = await kms.describe()
        assert description.status is ExternalKeyStatus.UNAVAILABLE
        assert description.reason is not None and "region" in description.reason
        with pytest.raises(KeyUnavailable):
            await kms.wrap(SECRET, CONTEXT)
        assert connector.pool_size == 0
    finally:
        await connector.aclose()


@pytest.mark.parametrize("endpoint", ["not a url", "http://[::1"])
async def test_invalid_endpoint_url_is_unavailable(aws_env: str, endpoint: str) -> None:
    connector = AwsKmsConnector(default_region=None, default_endpoint_url=endpoint)
    try:
        kms = connector.connect(aws_ref("any-key"))

        description = await kms.describe()
        assert description.status is ExternalKeyStatus.UNAVAILABLE
        assert description.reason == "the AWS KMS endpoint URL is invalid"
        with pytest.raises(InvalidInput):
            await kms.wrap(SECRET, CONTEXT)
    finally:
        await connector.aclose()


async def test_rotation_state_marker(aws_kms: AwsKms, kms_admin: Any, kms_key: str) -> None:
    initial = await aws_kms.rotation_state()
    assert initial.marker == "aws:rotations=0"
    assert (initial.rotation_count, initial.last_rotation) == (0, None)
    assert initial.rotation_enabled is False
    assert (await aws_kms.rotation_state()) == initial

    kms_admin.rotate_key_on_demand(KeyId=kms_key)
    first = await aws_kms.rotation_state()
    assert first.marker != initial.marker
    assert first.rotation_count == 1
    assert first.last_rotation is not None and first.last_rotation.tzinfo is not None
    assert first.marker == f"aws:rotations=1:{first.last_rotation.isoformat()}"
    assert (await aws_kms.rotation_state()).marker == first.marker

    kms_admin.enable_key_rotation(KeyId=kms_key)
    kms_admin.rotate_key_on_demand(KeyId=kms_key)
    second = await aws_kms.rotation_state()
    assert second.rotation_count == 2
    assert second.rotation_enabled is True
    assert second.marker not in (initial.marker, first.marker)


async def test_connector_pools_one_client_per_region_and_endpoint(
    aws_connector: AwsKmsConnector, kms_admin: Any, moto_server: str
) -> None:
    key_a = kms_admin.create_key()["KeyMetadata"]["KeyId"]
    key_b = kms_admin.create_key()["KeyMetadata"]["KeyId"]
    ref_a, ref_b = aws_ref(key_a), aws_ref(key_b, location=AWS_TEST_REGION)
    kms_a, kms_b = aws_connector.connect(ref_a), aws_connector.connect(ref_b)

    # Concurrent first use must still create a single client.
    await asyncio.gather(*(kms.describe() for kms in (kms_a, kms_b) * 5))

    assert aws_connector.pool_size == 2  # region None (chain) and region given explicitly
    assert await aws_connector.client_for(ref_a) is await aws_connector.client_for(aws_ref(key_b))
    assert await aws_connector.client_for(ref_b) is not await aws_connector.client_for(ref_a)

    other = aws_ref(key_a, location="us-west-2")
    assert (await aws_connector.connect(other).describe()).status is ExternalKeyStatus.DELETED
    assert aws_connector.pool_size == 3


async def test_aclose_closes_clients_and_connector_can_reopen(
    aws_connector: AwsKmsConnector, kms_key: str
) -> None:
    kms = aws_connector.connect(aws_ref(kms_key))
    wrapped = await kms.wrap(SECRET, CONTEXT)
    first_client = await aws_connector.client_for(kms.ref)

    await aws_connector.aclose()
    assert aws_connector.pool_size == 0

    assert await kms.unwrap(wrapped.ciphertext, CONTEXT) == SECRET
    assert await aws_connector.client_for(kms.ref) is not first_client
    await aws_connector.aclose()
    await aws_connector.aclose()  # idempotent


def test_connect_refuses_a_local_ref() -> None:
    connector = AwsKmsConnector(default_region="eu-west-1", default_endpoint_url=None)
    with pytest.raises(InvalidInput):
        connector.connect(ExternalKeyRef(provider=KmsProvider.LOCAL, key_id="k"))
