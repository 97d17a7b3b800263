"""Pkcs11Kms / Pkcs11KmsConnector against a real SoftHSM2 token, acted on by its officer."""

from __future__ import annotations

import asyncio
import logging
import time

import pkcs11
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from app.application.ports import ExternalKeyRef
from app.domain.errors import (
    DecryptionFailed,
    EkmsError,
    InvalidInput,
    KeyUnavailable,
    Reason,
    ServiceUnavailable,
)
from app.domain.values import ExternalKeyStatus, KmsProvider
from app.infra.kms.pkcs11 import Pkcs11Kms, Pkcs11KmsConnector
from app.infra.kms.pkcs11.blob import IV_SIZE, TAG_SIZE
from tests.fixtures.pkcs11 import (
    SOFTHSM_LIBRARY,
    HsmAdmin,
    SoftHsmToken,
    pkcs11_config,
    pkcs11_ref,
)

pytestmark = pytest.mark.pkcs11

CONTEXT = {"ekms:instance": "test-instance", "ekms:kek": "kek-1"}
SECRET = bytes(range(32))


async def test_wrap_unwrap_round_trip_with_context(pkcs11_kms: Pkcs11Kms, pkcs11_key: str) -> None:
    wrapped = await pkcs11_kms.wrap(SECRET, CONTEXT)

    blob = wrapped.ciphertext
    assert blob[:3] == b"\x01\x01\x01"  # version 1, a 1-byte CKA_ID, CKA_ID 01
    assert len(blob) == 3 + IV_SIZE + len(SECRET) + TAG_SIZE
    assert SECRET not in blob and SECRET.hex() not in repr(wrapped)
    assert wrapped.key_name.startswith("pkcs11:token=ekms-")
    assert f";object={pkcs11_key};id=%01;type=secret-key" in wrapped.key_name
    assert await pkcs11_kms.unwrap(blob, dict(reversed(list(CONTEXT.items())))) == SECRET
    assert (await pkcs11_kms.wrap(SECRET, CONTEXT)).ciphertext != blob  # a fresh IV each time


@pytest.mark.parametrize(
    "context",
    [
        {**CONTEXT, "ekms:kek": "kek-2"},
        {"ekms:instance": "test-instance"},
        {**CONTEXT, "extra": ""},
        {},
        {"ekms:instance": "test-instanceekms:kek", "": "kek-1"},
    ],
)
async def test_a_wrong_context_is_decryption_failed(
    pkcs11_kms: Pkcs11Kms, context: dict[str, str]
) -> None:
    wrapped = (await pkcs11_kms.wrap(SECRET, CONTEXT)).ciphertext

    with pytest.raises(DecryptionFailed):
        await pkcs11_kms.unwrap(wrapped, context)


async def test_a_tampered_blob_is_decryption_failed(pkcs11_kms: Pkcs11Kms) -> None:
    blob = (await pkcs11_kms.wrap(SECRET, CONTEXT)).ciphertext
    flips = [0, 1, 2, 3, 3 + IV_SIZE, len(blob) - 1]  # version, id length, id, IV, body, tag
    tampered = [blob[:i] + bytes([blob[i] ^ 1]) + blob[i + 1 :] for i in flips]
    tampered += [b"", blob[:1], blob[:-1], blob[: 3 + IV_SIZE + TAG_SIZE], blob + b"\x00"]

    for bad in tampered:
        with pytest.raises(DecryptionFailed):
            await pkcs11_kms.unwrap(bad, CONTEXT)
        with pytest.raises(DecryptionFailed):
            await pkcs11_kms.rewrap(bad, CONTEXT)


async def test_a_blob_of_another_key_does_not_unwrap(
    pkcs11_connector: Pkcs11KmsConnector, pkcs11_kms: Pkcs11Kms, hsm_admin: HsmAdmin
) -> None:
    hsm_admin.create("other-key")  # the same CKA_ID 01, another label and material
    other = pkcs11_connector.connect(pkcs11_ref("other-key"))
    wrapped = (await other.wrap(SECRET, CONTEXT)).ciphertext

    with pytest.raises(DecryptionFailed):
        await pkcs11_kms.unwrap(wrapped, CONTEXT)


async def test_an_enabled_key_is_described_enabled(pkcs11_kms: Pkcs11Kms) -> None:
    described = await pkcs11_kms.describe()

    assert described.status is ExternalKeyStatus.ENABLED
    assert described.key_name is not None and described.key_name.endswith(";id=%01;type=secret-key")
    assert described.rotation_enabled is False and described.reason_code is None


@pytest.mark.parametrize("flag", ["encrypt", "decrypt"])
async def test_clearing_cka_encrypt_or_decrypt_disables_the_key(
    pkcs11_kms: Pkcs11Kms, pkcs11_key: str, hsm_admin: HsmAdmin, flag: str
) -> None:
    wrapped = (await pkcs11_kms.wrap(SECRET, CONTEXT)).ciphertext

    hsm_admin.set(pkcs11_key, **{flag: False})

    assert (await pkcs11_kms.describe()).status is ExternalKeyStatus.DISABLED
    for call in (pkcs11_kms.wrap(SECRET, CONTEXT), pkcs11_kms.unwrap(wrapped, CONTEXT)):
        with pytest.raises(KeyUnavailable) as refused:
            await call
        assert refused.value.reason is Reason.EXTERNAL_KEY_DISABLED
    assert (await pkcs11_kms.rotation_state()).marker.startswith("pkcs11:id=01")

    hsm_admin.set(pkcs11_key, **{flag: True})

    assert (await pkcs11_kms.describe()).status is ExternalKeyStatus.ENABLED
    assert await pkcs11_kms.unwrap(wrapped, CONTEXT) == SECRET


async def test_destroying_the_key_makes_it_deleted(
    pkcs11_kms: Pkcs11Kms, pkcs11_key: str, hsm_admin: HsmAdmin
) -> None:
    wrapped = (await pkcs11_kms.wrap(SECRET, CONTEXT)).ciphertext

    hsm_admin.destroy(pkcs11_key)

    assert (await pkcs11_kms.describe()).status is ExternalKeyStatus.DELETED
    calls = [pkcs11_kms.wrap(SECRET, CONTEXT), pkcs11_kms.unwrap(wrapped, CONTEXT)]
    calls += [pkcs11_kms.rewrap(wrapped, CONTEXT), pkcs11_kms.rotation_state()]
    for call in calls:
        with pytest.raises(KeyUnavailable) as refused:
            await call
        assert refused.value.reason is Reason.EXTERNAL_KEY_DELETED


@pytest.mark.parametrize(
    "overrides",
    [
        {"library": "/nonexistent/libpkcs11.so"},
        {"library": "/etc/hostname"},  # a file that is not a shared library
        {"token_label": "no-such-token"},
    ],
    ids=["missing-library", "not-a-library", "missing-token"],
)
async def test_an_unreachable_library_or_token_is_unavailable(
    pkcs11_token: SoftHsmToken, overrides: dict[str, str]
) -> None:
    connector = Pkcs11KmsConnector(pkcs11_config(pkcs11_token, **overrides))
    kms = connector.connect(pkcs11_ref("kek"))
    try:
        described = await kms.describe()
        assert described.status is ExternalKeyStatus.UNAVAILABLE
        assert described.reason_code is Reason.KMS_UNAVAILABLE and described.no_answer
        with pytest.raises(ServiceUnavailable):
            await kms.wrap(SECRET, CONTEXT)
    finally:
        await connector.aclose()


async def test_a_wrong_pin_is_a_refusal(pkcs11_token: SoftHsmToken, pkcs11_key: str) -> None:
    wrong = "not-the-pin-4242"
    connector = Pkcs11KmsConnector(pkcs11_config(pkcs11_token, pin=SecretStr(wrong)))
    kms = connector.connect(pkcs11_ref(pkcs11_key))
    try:
        described = await kms.describe()
        assert described.status is ExternalKeyStatus.UNAVAILABLE
        assert described.reason_code is Reason.EXTERNAL_KEY_ACCESS_DENIED
        assert not described.no_answer
        with pytest.raises(KeyUnavailable) as refused:
            await kms.wrap(SECRET, CONTEXT)
        assert refused.value.reason is Reason.EXTERNAL_KEY_ACCESS_DENIED
        assert wrong not in str(refused.value) and wrong not in repr(refused.value.__cause__)
        assert connector.pool.logins == 1  # a refused PIN is never spent again (HSMs lock it)
    finally:
        await connector.aclose()


async def test_a_new_version_rotates_and_rewrap_keeps_the_plaintext(
    pkcs11_kms: Pkcs11Kms, pkcs11_key: str, hsm_admin: HsmAdmin
) -> None:
    before = await pkcs11_kms.rotation_state()
    old = (await pkcs11_kms.wrap(SECRET, CONTEXT)).ciphertext
    assert before.rotation_count == 0 and not before.rotation_enabled

    hsm_admin.create(pkcs11_key, b"\x02")  # the officer rotates: same label, a higher CKA_ID

    after = await pkcs11_kms.rotation_state()
    assert after.marker != before.marker and after.marker.startswith("pkcs11:id=02;kcv=")
    assert after.rotation_count == 1
    assert await pkcs11_kms.rotation_state() == after  # stable until the next rotation
    rewrapped = await pkcs11_kms.rewrap(old, CONTEXT)
    assert rewrapped.ciphertext[:3] == b"\x01\x01\x02" and rewrapped.key_name.find(";id=%02;") > 0
    assert await pkcs11_kms.unwrap(rewrapped.ciphertext, CONTEXT) == SECRET
    assert await pkcs11_kms.unwrap(old, CONTEXT) == SECRET  # the old version still unwraps
    assert (await pkcs11_kms.wrap(SECRET, CONTEXT)).ciphertext[2] == 2

    hsm_admin.set(pkcs11_key, b"\x01", encrypt=False)  # retire v1 from wrapping
    assert await pkcs11_kms.unwrap(old, CONTEXT) == SECRET
    hsm_admin.destroy(pkcs11_key, b"\x01")  # prune v1 after the rewrap

    assert (await pkcs11_kms.describe()).status is ExternalKeyStatus.ENABLED
    assert await pkcs11_kms.unwrap(rewrapped.ciphertext, CONTEXT) == SECRET
    with pytest.raises(DecryptionFailed):
        await pkcs11_kms.unwrap(old, CONTEXT)


async def test_new_material_under_the_same_cka_id_changes_the_marker(
    pkcs11_kms: Pkcs11Kms, pkcs11_key: str, hsm_admin: HsmAdmin
) -> None:
    before = await pkcs11_kms.rotation_state()

    hsm_admin.destroy(pkcs11_key)
    hsm_admin.create(pkcs11_key)  # CKA_ID 01 again, new material

    assert (await pkcs11_kms.rotation_state()).marker != before.marker


async def test_fifty_concurrent_unwraps_share_one_session(
    pkcs11_connector: Pkcs11KmsConnector, pkcs11_kms: Pkcs11Kms
) -> None:
    secrets_ = [bytes([i]) * 32 for i in range(50)]
    wrapped = [(await pkcs11_kms.wrap(s, CONTEXT)).ciphertext for s in secrets_]

    opened = await asyncio.gather(*(pkcs11_kms.unwrap(w, CONTEXT) for w in wrapped))

    assert opened == secrets_
    assert pkcs11_connector.pool.sessions_opened == 1


async def test_connectors_on_one_library_never_call_it_at_once(
    pkcs11_token: SoftHsmToken, pkcs11_key: str
) -> None:
    # SoftHSM2 runs without mutexes under python-pkcs11's C_Initialize(NULL): concurrent
    # calls from several threads fail (CKR_GENERAL_ERROR) unless the library's lock serialises them.
    connectors = [Pkcs11KmsConnector(pkcs11_config(pkcs11_token)) for _ in range(4)]
    kmses = [c.connect(pkcs11_ref(pkcs11_key)) for c in connectors]
    try:
        wrapped = (await kmses[0].wrap(SECRET, CONTEXT)).ciphertext

        opened = await asyncio.gather(*(kmses[i % 4].unwrap(wrapped, CONTEXT) for i in range(200)))

        assert opened == [SECRET] * 200
    finally:
        for connector in connectors:
            await connector.aclose()


# python-pkcs11's search context reports, from its destructor, that C_FindObjectsFinal failed on
# the dead session: an "exception ignored" on stderr, not an error of the call (it recovers).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_the_pool_reopens_its_session_after_the_library_is_reinitialised(
    pkcs11_kms: Pkcs11Kms,
) -> None:
    wrapped = (await pkcs11_kms.wrap(SECRET, CONTEXT)).ciphertext
    pkcs11.lib(SOFTHSM_LIBRARY).reinitialize()  # every session handle of the process is gone

    with capture_logs() as logs:
        assert await pkcs11_kms.unwrap(wrapped, CONTEXT) == SECRET

    assert [e["event"] for e in logs] == ["pkcs11_session_lost", "pkcs11_session_opened"]


async def test_a_caller_waits_at_most_the_call_timeout(
    pkcs11_token: SoftHsmToken, pkcs11_key: str
) -> None:
    connector = Pkcs11KmsConnector(pkcs11_config(pkcs11_token, call_timeout=0.2))
    kms = connector.connect(pkcs11_ref(pkcs11_key))
    try:
        busy = asyncio.ensure_future(connector.call(lambda s: time.sleep(0.5)))
        await asyncio.sleep(0.05)  # the busy call holds the thread
        described = await kms.describe()  # queued behind the busy call
        assert described.status is ExternalKeyStatus.UNAVAILABLE and described.no_answer
        assert described.reason == "the PKCS#11 token did not answer in time"
        with pytest.raises(ServiceUnavailable):
            await busy
        await asyncio.sleep(0.5)  # the busy call ends; the token answers again
        assert (await kms.describe()).status is ExternalKeyStatus.ENABLED
    finally:
        await connector.aclose()


async def test_bad_input_is_refused_before_any_hsm_call(pkcs11_kms: Pkcs11Kms) -> None:
    for key_to_wrap in (b"", b"x" * 4097, "not bytes"):
        with pytest.raises(InvalidInput):
            await pkcs11_kms.wrap(key_to_wrap, CONTEXT)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        await pkcs11_kms.wrap(SECRET, {"k": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidInput):
        await pkcs11_kms.unwrap("not bytes", CONTEXT)  # type: ignore[arg-type]


def test_only_pkcs11_references_connect(pkcs11_token: SoftHsmToken) -> None:
    connector = Pkcs11KmsConnector(pkcs11_config(pkcs11_token))

    with pytest.raises(InvalidInput):
        connector.connect(ExternalKeyRef(provider=KmsProvider.AWS, key_id="kek"))
    with pytest.raises(InvalidInput):
        connector.connect(pkcs11_ref(""))
    assert connector.endpoint(pkcs11_ref("kek")) == (
        f"pkcs11:{SOFTHSM_LIBRARY} token={pkcs11_token.label}"
    )


async def test_the_pin_is_never_in_a_repr_an_error_or_a_log(
    pkcs11_token: SoftHsmToken,
    pkcs11_key: str,
    hsm_admin: HsmAdmin,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    pin, texts = pkcs11_token.pin, []
    configs = [
        pkcs11_config(pkcs11_token),
        pkcs11_config(pkcs11_token, token_label="no-such-token"),
        pkcs11_config(pkcs11_token, library="/nonexistent/lib.so"),
        pkcs11_config(pkcs11_token, pin=SecretStr(pin + "-wrong")),
    ]
    with capture_logs() as logs:
        for config in configs:
            connector = Pkcs11KmsConnector(config)
            kms = connector.connect(pkcs11_ref(pkcs11_key))
            texts += [repr(config), str(config), repr(connector), repr(kms), repr(connector.pool)]
            texts.append(repr(await kms.describe()))
            for call in (kms.wrap(SECRET, CONTEXT), kms.unwrap(b"\x01\x00" + bytes(40), CONTEXT)):
                try:
                    await call
                except EkmsError as err:
                    texts += [str(err), repr(err), repr(err.__cause__)]
            await connector.aclose()
        hsm_admin.destroy(pkcs11_key)
        connector = Pkcs11KmsConnector(configs[0])
        texts.append(repr(await connector.connect(pkcs11_ref(pkcs11_key)).describe()))
        await connector.aclose()

    out, err = capfd.readouterr()
    texts += [repr(logs), caplog.text, out, err]
    assert logs and any("ekms-" in t for t in texts)  # something was said
    assert not [t for t in texts if pin in t]
