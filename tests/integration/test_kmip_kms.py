"""KmipKms / KmipKmsConnector against PyKMIP's own server over mutual TLS (tests/fixtures/kmip.py).

The key's owner acts on the server with PyKMIP's client (``kmip_admin``): Activate, Revoke,
Destroy and ReKey are KMIP operations on the real server, then ekms reads the result back.
ReKey and Link attributes come from the harness's small engine extension (PyKMIP 0.11 has
neither); everything else is PyKMIP's server unchanged.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

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
from app.infra.kms.kmip import KmipKms, KmipKmsConnector, _format, _protocol
from app.infra.kms.kmip._format import FORMAT_HEADER
from tests.fixtures.kmip import KmipAdmin, KmipServer, free_port, kmip_ref

pytestmark = pytest.mark.kms

CONTEXT = {"ekms:instance": "test-instance", "ekms:kek": "kek-1"}
SECRET = bytes(range(32))


async def test_wrap_unwrap_round_trip_with_context(
    kmip_kms: KmipKms, kmip_key: str, kmip_server: KmipServer
) -> None:
    wrapped = await kmip_kms.wrap(SECRET, CONTEXT)

    assert wrapped.key_name == f"kmip://127.0.0.1:{kmip_server.port}/{kmip_key}"
    assert wrapped.ciphertext.startswith(FORMAT_HEADER)
    assert SECRET not in wrapped.ciphertext
    assert await kmip_kms.unwrap(wrapped.ciphertext, CONTEXT) == SECRET
    again = await kmip_kms.wrap(SECRET, CONTEXT)
    assert again.ciphertext != wrapped.ciphertext  # a fresh nonce each time


@pytest.mark.parametrize(
    "context",
    [
        {**CONTEXT, "ekms:kek": "kek-2"},
        {},
        {**CONTEXT, "extra": "x"},
        {"ekms:instance": "test-instance"},
    ],
)
async def test_wrong_context_fails_opaquely(kmip_kms: KmipKms, context: dict[str, str]) -> None:
    wrapped = await kmip_kms.wrap(SECRET, CONTEXT)

    with pytest.raises(DecryptionFailed) as info:
        await kmip_kms.unwrap(wrapped.ciphertext, context)
    assert info.value.reason is Reason.DECRYPTION_FAILED
    assert str(info.value) == str(DecryptionFailed())


def _flip(blob: bytes, index: int) -> bytes:
    tampered = bytearray(blob)
    tampered[index] ^= 0x01
    return bytes(tampered)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda b: _flip(b, -1), id="ciphertext"),
        pytest.param(lambda b: _flip(b, -70), id="tag"),
        pytest.param(lambda b: _flip(b, len(FORMAT_HEADER) + 2), id="key-uid"),
        pytest.param(lambda b: _flip(b, -85), id="nonce"),
        pytest.param(lambda b: _flip(b, 0), id="header"),
        pytest.param(lambda b: b[:-1], id="truncated"),
        pytest.param(lambda b: b[: len(FORMAT_HEADER) + 10], id="cut-short"),
        pytest.param(lambda b: b + b"\x00", id="extended"),
        pytest.param(lambda b: b"not a kmip blob", id="garbage"),
        pytest.param(lambda b: b"", id="empty"),
    ],
)
async def test_tampered_blob_fails_opaquely(kmip_kms: KmipKms, tamper: object) -> None:
    wrapped = await kmip_kms.wrap(SECRET, CONTEXT)
    assert len(wrapped.ciphertext) > 92  # ... nonce (12) || tag (16) || 64 bytes of ciphertext
    bad = tamper(wrapped.ciphertext)  # type: ignore[operator]

    with pytest.raises(DecryptionFailed) as info:
        await kmip_kms.unwrap(bad, CONTEXT)
    assert str(info.value) == str(DecryptionFailed())
    assert not bad or bad.hex() not in repr(info.value)


async def test_a_blob_of_another_key_is_refused(
    kmip_connector: KmipKmsConnector, kmip_admin: KmipAdmin, kmip_kms: KmipKms
) -> None:
    # The client may use another key of the server: a blob made under it (with our context)
    # must not unwrap under the configured key.
    other = kmip_connector.connect(kmip_ref(kmip_admin.create()))
    foreign = await other.wrap(SECRET, CONTEXT)

    with pytest.raises(DecryptionFailed):
        await kmip_kms.unwrap(foreign.ciphertext, CONTEXT)
    with pytest.raises(DecryptionFailed):
        await kmip_kms.rewrap(foreign.ciphertext, CONTEXT)


async def test_a_blob_forged_under_another_key_for_our_context_is_refused(
    kmip_connector: KmipKmsConnector, kmip_admin: KmipAdmin, kmip_kms: KmipKms
) -> None:
    # An attacker who may Encrypt with another key B of the server seals a key of their choice
    # with exactly the AAD that our key A's blobs carry: only the chain check refuses it.
    other = kmip_admin.create()
    aad = _format.aad(kmip_kms.ref.key_id, other, CONTEXT)
    nonce = bytes(12)
    chosen = b"attacker's key".ljust(32, b"!")
    request = _protocol.encrypt_request(other, _format.seal_plaintext(aad, chosen), nonce, aad)
    encrypted = _protocol.parse_encrypt(await kmip_connector.exchange(request))
    assert encrypted.tag is not None
    forged = _format.Sealed(uid=other, nonce=nonce, tag=encrypted.tag, ciphertext=encrypted.data)

    with pytest.raises(DecryptionFailed):
        await kmip_kms.unwrap(forged.to_bytes(), CONTEXT)


@pytest.mark.parametrize("size", [0, 4097])
async def test_key_to_wrap_size_is_checked(kmip_kms: KmipKms, size: int) -> None:
    with pytest.raises(InvalidInput):
        await kmip_kms.wrap(b"k" * size, CONTEXT)


# --- states, acted on the server itself ----------------------------------------------------


async def test_active_key_is_enabled(kmip_kms: KmipKms, kmip_key: str) -> None:
    description = await kmip_kms.describe()

    assert description.status is ExternalKeyStatus.ENABLED
    assert description.key_name is not None and description.key_name.endswith(f"/{kmip_key}")


async def test_pre_active_key_is_disabled_until_activated(
    kmip_connector: KmipKmsConnector, kmip_admin: KmipAdmin
) -> None:
    uid = kmip_admin.create(activate=False)
    kms = kmip_connector.connect(kmip_ref(uid))

    assert (await kms.describe()).status is ExternalKeyStatus.DISABLED
    with pytest.raises(KeyUnavailable) as info:
        await kms.wrap(SECRET, CONTEXT)
    assert info.value.reason is Reason.EXTERNAL_KEY_DISABLED

    kmip_admin.activate(uid)
    assert (await kms.describe()).status is ExternalKeyStatus.ENABLED
    wrapped = await kms.wrap(SECRET, CONTEXT)
    assert await kms.unwrap(wrapped.ciphertext, CONTEXT) == SECRET


@pytest.mark.parametrize("compromised", [False, True], ids=["deactivated", "compromised"])
async def test_revoked_key_is_disabled(
    kmip_kms: KmipKms, kmip_admin: KmipAdmin, kmip_key: str, compromised: bool
) -> None:
    wrapped = await kmip_kms.wrap(SECRET, CONTEXT)

    kmip_admin.revoke(kmip_key, compromised=compromised)

    assert kmip_admin.state(kmip_key) == ("COMPROMISED" if compromised else "DEACTIVATED")
    assert (await kmip_kms.describe()).status is ExternalKeyStatus.DISABLED
    for call in (kmip_kms.unwrap(wrapped.ciphertext, CONTEXT), kmip_kms.wrap(SECRET, CONTEXT)):
        with pytest.raises(KeyUnavailable) as info:
            await call
        assert info.value.reason is Reason.EXTERNAL_KEY_DISABLED
    # As AWS: the rotation history stays readable while the key is disabled.
    assert (await kmip_kms.rotation_state()).marker == f"kmip:rekeys=0:{kmip_key}"


async def test_destroyed_key_is_deleted(
    kmip_kms: KmipKms, kmip_admin: KmipAdmin, kmip_key: str
) -> None:
    wrapped = await kmip_kms.wrap(SECRET, CONTEXT)
    kmip_admin.revoke(kmip_key)  # KMIP destroys only a key that is not Active

    kmip_admin.destroy(kmip_key)

    description = await kmip_kms.describe()
    assert description.status is ExternalKeyStatus.DELETED
    assert description.reason_code is None
    for call in (
        kmip_kms.unwrap(wrapped.ciphertext, CONTEXT),
        kmip_kms.wrap(SECRET, CONTEXT),
        kmip_kms.rotation_state(),
    ):
        with pytest.raises(KeyUnavailable) as info:
            await call
        assert info.value.reason is Reason.EXTERNAL_KEY_DELETED


async def test_missing_key_is_deleted(kmip_connector: KmipKmsConnector) -> None:
    kms = kmip_connector.connect(kmip_ref("no-such-key"))

    assert (await kms.describe()).status is ExternalKeyStatus.DELETED
    with pytest.raises(KeyUnavailable) as info:
        await kms.wrap(SECRET, CONTEXT)
    assert info.value.reason is Reason.EXTERNAL_KEY_DELETED


async def test_stopped_server_is_unavailable_then_recovers(
    kmip_kms: KmipKms, kmip_server: KmipServer
) -> None:
    wrapped = await kmip_kms.wrap(SECRET, CONTEXT)  # leaves an idle pooled connection

    kmip_server.stop()
    try:
        description = await kmip_kms.describe()
        assert description.status is ExternalKeyStatus.UNAVAILABLE
        assert description.reason_code is Reason.KMS_UNAVAILABLE and description.no_answer
        with pytest.raises(ServiceUnavailable) as info:
            await kmip_kms.unwrap(wrapped.ciphertext, CONTEXT)
        assert info.value.reason is Reason.KMS_UNAVAILABLE
        with pytest.raises(ServiceUnavailable):
            await kmip_kms.wrap(SECRET, CONTEXT)
    finally:
        kmip_server.start()

    assert (await kmip_kms.describe()).status is ExternalKeyStatus.ENABLED
    assert await kmip_kms.unwrap(wrapped.ciphertext, CONTEXT) == SECRET


# --- ReKey ----------------------------------------------------------------------------------


async def test_rekey_changes_the_marker_and_rewrap_moves_the_blob(
    kmip_kms: KmipKms, kmip_admin: KmipAdmin, kmip_key: str
) -> None:
    before = await kmip_kms.rotation_state()
    wrapped = await kmip_kms.wrap(SECRET, CONTEXT)
    assert before.rotation_count == 0 and before.last_rotation is None

    replacement = kmip_admin.rekey(kmip_key)

    after = await kmip_kms.rotation_state()
    assert after.marker != before.marker
    assert after.marker == f"kmip:rekeys=1:{replacement}"
    assert after.rotation_count == 1 and after.last_rotation is not None
    assert (await kmip_kms.rotation_state()).marker == after.marker  # stable until the next

    moved = await kmip_kms.rewrap(wrapped.ciphertext, CONTEXT)
    assert moved.key_name.endswith(f"/{replacement}")
    assert await kmip_kms.unwrap(moved.ciphertext, CONTEXT) == SECRET
    with pytest.raises(DecryptionFailed):
        await kmip_kms.unwrap(moved.ciphertext, {**CONTEXT, "ekms:kek": "kek-2"})
    assert (await kmip_kms.wrap(SECRET, CONTEXT)).key_name.endswith(f"/{replacement}")
    # The old blob still opens while the old key is kept (until the EKEK is rewrapped).
    assert await kmip_kms.unwrap(wrapped.ciphertext, CONTEXT) == SECRET

    third = kmip_admin.rekey(replacement)
    assert (await kmip_kms.rotation_state()).marker == f"kmip:rekeys=2:{third}"
    assert (await kmip_kms.rewrap(moved.ciphertext, CONTEXT)).key_name.endswith(f"/{third}")


async def test_a_fresh_connector_follows_the_chain_to_unwrap(
    kmip_server: KmipServer, kmip_admin: KmipAdmin, kmip_kms: KmipKms, kmip_key: str
) -> None:
    replacement = kmip_admin.rekey(kmip_key)
    moved = await kmip_kms.rewrap((await kmip_kms.wrap(SECRET, CONTEXT)).ciphertext, CONTEXT)
    assert moved.key_name.endswith(f"/{replacement}")

    restarted = KmipKmsConnector(kmip_server.settings())  # as after a restart: nothing cached
    try:
        kms = restarted.connect(kmip_ref(kmip_key))
        assert await kms.unwrap(moved.ciphertext, CONTEXT) == SECRET
    finally:
        await restarted.aclose()


async def test_after_rekey_the_state_is_the_current_keys(
    kmip_kms: KmipKms, kmip_admin: KmipAdmin, kmip_key: str
) -> None:
    replacement = kmip_admin.rekey(kmip_key)

    kmip_admin.revoke(kmip_key)  # the retired key is deactivated: rotation, not revocation
    assert (await kmip_kms.describe()).status is ExternalKeyStatus.ENABLED

    kmip_admin.revoke(replacement)  # the current key revoked: the customer pulled the plug
    assert (await kmip_kms.describe()).status is ExternalKeyStatus.DISABLED
    with pytest.raises(KeyUnavailable) as info:
        await kmip_kms.wrap(SECRET, CONTEXT)
    assert info.value.reason is Reason.EXTERNAL_KEY_DISABLED


# --- TLS, pool, reprs -----------------------------------------------------------------------


async def test_a_client_certificate_the_server_does_not_trust_is_refused(
    kmip_server: KmipServer, kmip_key: str
) -> None:
    pki = kmip_server.pki
    connector = KmipKmsConnector(
        kmip_server.settings(cert_file=pki.foreign_client_cert, key_file=pki.foreign_client_key)
    )
    try:
        kms = connector.connect(kmip_ref(kmip_key))
        description = await kms.describe()
        assert description.status is ExternalKeyStatus.UNAVAILABLE
        assert description.reason_code is Reason.EXTERNAL_KEY_ACCESS_DENIED
        assert not description.no_answer  # a refusal fails closed at once
        with pytest.raises(KeyUnavailable):
            await kms.wrap(SECRET, CONTEXT)
    finally:
        await connector.aclose()


async def test_a_server_certificate_from_another_ca_is_refused(
    kmip_server: KmipServer, kmip_key: str
) -> None:
    connector = KmipKmsConnector(kmip_server.settings(ca_file=kmip_server.pki.foreign_ca))
    try:
        kms = connector.connect(kmip_ref(kmip_key))
        description = await kms.describe()
        assert description.status is ExternalKeyStatus.UNAVAILABLE
        assert description.reason_code is Reason.EXTERNAL_KEY_UNAVAILABLE
        assert description.reason and "certificate" in description.reason
        with pytest.raises(KeyUnavailable):
            await kms.wrap(SECRET, CONTEXT)
    finally:
        await connector.aclose()


async def test_concurrent_calls_share_a_bounded_pool(
    kmip_connector: KmipKmsConnector, kmip_kms: KmipKms
) -> None:
    contexts = [{**CONTEXT, "n": str(n)} for n in range(12)]

    wrapped = await asyncio.gather(*(kmip_kms.wrap(SECRET, ctx) for ctx in contexts))
    opened = await asyncio.gather(
        *(kmip_kms.unwrap(w.ciphertext, ctx) for w, ctx in zip(wrapped, contexts, strict=True))
    )

    assert opened == [SECRET] * len(contexts)
    assert 1 <= kmip_connector.idle_connections <= kmip_connector.pool_size == 2
    await kmip_connector.aclose()
    assert kmip_connector.idle_connections == 0
    assert await kmip_kms.unwrap(wrapped[0].ciphertext, contexts[0]) == SECRET  # reopens


async def test_no_secret_in_reprs_or_errors(
    kmip_connector: KmipKmsConnector, kmip_kms: KmipKms, kmip_server: KmipServer
) -> None:
    wrapped = await kmip_kms.wrap(SECRET, CONTEXT)
    errors: list[Exception] = []
    for bad_context in ({}, {**CONTEXT, "ekms:kek": "x"}):
        try:
            await kmip_kms.unwrap(wrapped.ciphertext, bad_context)
        except DecryptionFailed as exc:
            errors.append(exc)
    nowhere = KmipKmsConnector(kmip_server.settings(port=free_port()))  # connection refused
    unreachable = nowhere.connect(kmip_kms.ref)
    for call in (
        unreachable.unwrap(wrapped.ciphertext, CONTEXT),
        unreachable.wrap(SECRET, CONTEXT),
    ):
        try:
            await call
        except ServiceUnavailable as exc:
            errors.append(exc)
    await nowhere.aclose()
    assert len(errors) == 4

    client_key = kmip_server.pki.client_key.read_text()
    key_body = "".join(client_key.splitlines()[1:-1])
    shown = [repr(kmip_kms), repr(kmip_connector), repr(wrapped), repr(unreachable)]
    for exc in errors:
        shown += [str(exc), repr(exc), repr(exc.__cause__), str(exc.__cause__)]
    for text in shown:
        assert SECRET.hex() not in text and repr(SECRET) not in text
        assert wrapped.ciphertext.hex() not in text
        assert key_body[:40] not in text


def test_connector_refuses_bad_key_files(kmip_server: KmipServer, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.key"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n")
    for settings in (
        kmip_server.settings(key_file=garbage),
        kmip_server.settings(cert_file=tmp_path / "absent.crt"),
        kmip_server.settings(ca_file=garbage),
    ):
        with pytest.raises(ValueError) as info:
            KmipKmsConnector(settings)
        assert "c2VjcmV0" not in str(info.value) and "EKMS_KMIP_" in str(info.value)


def test_connector_endpoint_and_provider(kmip_connector: KmipKmsConnector) -> None:
    ref = kmip_ref("1")
    port = kmip_connector.endpoint(ref).rsplit(":", 1)[1]

    assert kmip_connector.endpoint(ref) == f"kmip://127.0.0.1:{port}"
    with pytest.raises(InvalidInput):
        kmip_connector.connect(ExternalKeyRef(provider=KmsProvider.AWS, key_id="1"))
    with pytest.raises(InvalidInput):
        kmip_connector.connect(kmip_ref(""))
