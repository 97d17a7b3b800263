"""LocalKms / LocalKmsConnector and load_local_root_key."""

from __future__ import annotations

import base64
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from app.application.ports import ExternalKeyRef
from app.domain.errors import DecryptionFailed, EkmsError, InvalidInput
from app.domain.values import ExternalKeyStatus, KmsProvider
from app.infra.kms.local import (
    FORMAT_HEADER,
    LocalKms,
    LocalKmsConnector,
    load_local_root_key,
)

ROOT = bytes(range(100, 132))
OTHER_ROOT = bytes(range(32))
SECRET = b"\xa5" * 32
CONTEXT = {"ekms:instance": "i-1", "ekms:kek": "kek-1"}
REF = ExternalKeyRef(provider=KmsProvider.LOCAL, key_id="local-root")


def kms(root: bytes = ROOT, ref: ExternalKeyRef = REF) -> LocalKms:
    return LocalKms(ref, root)


def renderings(secret: bytes) -> list[str]:
    """Ways key bytes could leak into text."""
    return [
        secret.hex(),
        repr(secret),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
    ]


def assert_no_key_material(text: str, secret: bytes = ROOT) -> None:
    for rendering in renderings(secret):
        assert not rendering or rendering not in text


# --- wrap / unwrap ------------------------------------------------------------------------------


async def test_round_trip_with_context() -> None:
    local = kms()
    wrapped = await local.wrap(SECRET, CONTEXT)

    assert wrapped.ciphertext.startswith(FORMAT_HEADER)
    assert len(wrapped.ciphertext) == len(FORMAT_HEADER) + 12 + len(SECRET) + 16
    assert SECRET not in wrapped.ciphertext
    assert wrapped.key_name == local.key_name
    assert await local.unwrap(wrapped.ciphertext, CONTEXT) == SECRET


async def test_each_wrap_uses_a_fresh_nonce() -> None:
    local = kms()
    first, second = await local.wrap(SECRET, CONTEXT), await local.wrap(SECRET, CONTEXT)
    assert first.ciphertext != second.ciphertext


async def test_context_order_does_not_matter() -> None:
    local = kms()
    wrapped = await local.wrap(SECRET, {"a": "1", "b": "2"})
    assert await local.unwrap(wrapped.ciphertext, {"b": "2", "a": "1"}) == SECRET


async def test_survives_a_new_instance_with_the_same_root() -> None:
    wrapped = await kms().wrap(SECRET, CONTEXT)
    connector = LocalKmsConnector(ROOT)
    assert await connector.connect(REF).unwrap(wrapped.ciphertext, CONTEXT) == SECRET


@pytest.mark.parametrize(
    "context",
    [
        {"ekms:instance": "i-1", "ekms:kek": "kek-2"},
        {"ekms:instance": "i-1"},
        {},
        {**CONTEXT, "extra": ""},
    ],
)
async def test_wrong_context_fails_opaquely(context: dict[str, str]) -> None:
    local = kms()
    wrapped = await local.wrap(SECRET, CONTEXT)
    with pytest.raises(DecryptionFailed) as info:
        await local.unwrap(wrapped.ciphertext, context)
    assert str(info.value) == "ciphertext could not be decrypted"


async def test_key_id_is_bound() -> None:
    wrapped = await kms().wrap(SECRET, CONTEXT)
    other = kms(ref=ExternalKeyRef(provider=KmsProvider.LOCAL, key_id="local-other"))
    with pytest.raises(DecryptionFailed):
        await other.unwrap(wrapped.ciphertext, CONTEXT)


async def test_key_id_and_context_cannot_be_shifted_into_each_other() -> None:
    wrapped = await kms(ref=ExternalKeyRef(provider=KmsProvider.LOCAL, key_id="k")).wrap(SECRET, {})
    shifted = kms(ref=ExternalKeyRef(provider=KmsProvider.LOCAL, key_id="k\x00{}"))
    with pytest.raises(DecryptionFailed):
        await shifted.unwrap(wrapped.ciphertext, {})


async def test_other_root_key_fails() -> None:
    wrapped = await kms().wrap(SECRET, CONTEXT)
    with pytest.raises(DecryptionFailed):
        await kms(OTHER_ROOT).unwrap(wrapped.ciphertext, CONTEXT)


@pytest.mark.parametrize("position", [0, len(FORMAT_HEADER) - 1, len(FORMAT_HEADER), 30, -17, -1])
async def test_any_flipped_byte_fails(position: int) -> None:
    local = kms()
    blob = bytearray((await local.wrap(SECRET, CONTEXT)).ciphertext)
    blob[position] ^= 0x01
    with pytest.raises(DecryptionFailed):
        await local.unwrap(bytes(blob), CONTEXT)


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        FORMAT_HEADER,
        FORMAT_HEADER + b"\x00" * 28,
        b"ekms-local\x02" + b"\x00" * 60,
        b"not a local ciphertext at all, but long enough to pass a length check",
    ],
)
async def test_malformed_ciphertext_fails_opaquely(blob: bytes) -> None:
    with pytest.raises(DecryptionFailed):
        await kms().unwrap(blob, CONTEXT)


async def test_truncated_ciphertext_fails() -> None:
    local = kms()
    blob = (await local.wrap(SECRET, CONTEXT)).ciphertext
    with pytest.raises(DecryptionFailed):
        await local.unwrap(blob[:-1], CONTEXT)


@pytest.mark.parametrize("key_to_wrap", [b"", b"x" * 4097])
async def test_wrap_refuses_empty_or_oversized_input(key_to_wrap: bytes) -> None:
    with pytest.raises(InvalidInput):
        await kms().wrap(key_to_wrap, CONTEXT)


async def test_rewrap_gives_a_new_blob_with_the_same_content() -> None:
    local = kms()
    wrapped = await local.wrap(SECRET, CONTEXT)

    rewrapped = await local.rewrap(wrapped.ciphertext, CONTEXT)

    assert rewrapped.ciphertext != wrapped.ciphertext
    assert rewrapped.key_name == wrapped.key_name
    assert await local.unwrap(rewrapped.ciphertext, CONTEXT) == SECRET
    with pytest.raises(DecryptionFailed):
        await local.rewrap(wrapped.ciphertext, {"other": "context"})


# --- describe / rotation ------------------------------------------------------------------------


async def test_describe_is_enabled_with_a_fingerprint_arn() -> None:
    local = kms()
    description = await local.describe()

    assert description.status is ExternalKeyStatus.ENABLED
    assert description.key_name is not None
    prefix, fingerprint = description.key_name.split(":")
    assert prefix == "local" and len(fingerprint) == 16
    int(fingerprint, 16)
    assert description.rotation_enabled is False
    assert description.key_name != (await kms(OTHER_ROOT).describe()).key_name
    assert_no_key_material(description.key_name)


async def test_rotation_state_is_fixed_per_root_key() -> None:
    state = await kms().rotation_state()

    assert state.rotation_enabled is False
    assert state.rotation_count == 0
    assert state.last_rotation is None
    assert state.marker.startswith("local:")
    assert await kms().rotation_state() == state
    assert (await kms(OTHER_ROOT).rotation_state()).marker != state.marker


# --- connector ----------------------------------------------------------------------------------


def test_connector_warns_once_when_built() -> None:
    with capture_logs() as logs:
        connector = LocalKmsConnector(ROOT)
        connector.connect(REF)
        connector.connect(REF)

    assert len(logs) == 1
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["event"] == "local_root_key_in_use"
    assert "NOT an external KMS" in logs[0]["detail"]
    assert_no_key_material(repr(logs))


def test_connector_refuses_an_aws_ref() -> None:
    with pytest.raises(InvalidInput):
        LocalKmsConnector(ROOT).connect(ExternalKeyRef(provider=KmsProvider.AWS, key_id="k"))


@pytest.mark.parametrize("root", [b"", ROOT[:31], ROOT + b"\x00"])
def test_root_key_must_be_32_bytes(root: bytes) -> None:
    with pytest.raises(InvalidInput) as info:
        LocalKmsConnector(root)
    assert_no_key_material(repr(info.value), root)
    with pytest.raises(InvalidInput):
        LocalKms(REF, root)


async def test_reprs_carry_no_key_bytes() -> None:
    connector = LocalKmsConnector(ROOT)
    local = connector.connect(REF)
    wrapped = await local.wrap(SECRET, CONTEXT)

    for text in (repr(connector), repr(local), str(local), repr(wrapped)):
        assert_no_key_material(text)
        assert_no_key_material(text, SECRET)
    assert "fingerprint" in repr(connector)


# --- load_local_root_key ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        lambda k: base64.b64encode(k).decode(),
        lambda k: base64.urlsafe_b64encode(k).decode(),
        lambda k: base64.urlsafe_b64encode(k).decode().rstrip("="),
        lambda k: f"  {base64.b64encode(k).decode()}\n",
    ],
    ids=["standard", "urlsafe", "unpadded", "whitespace"],
)
def test_env_value_wins(tmp_path: Path, encode: Callable[[bytes], str]) -> None:
    key = b"\xfb\xff" * 16  # encodes with + and / (standard) or - and _ (urlsafe)
    file = tmp_path / "root.key"
    file.write_bytes(OTHER_ROOT)

    loaded = load_local_root_key(env_value=encode(key), file=file, create_if_missing=True)

    assert loaded == key


def test_blank_env_value_falls_back_to_the_file(tmp_path: Path) -> None:
    file = tmp_path / "root.key"
    file.write_bytes(ROOT)
    assert load_local_root_key(env_value="  ", file=file, create_if_missing=False) == ROOT


def test_file_with_raw_bytes(tmp_path: Path) -> None:
    file = tmp_path / "root.key"
    file.write_bytes(ROOT)
    file.chmod(0o600)
    assert load_local_root_key(env_value=None, file=file, create_if_missing=False) == ROOT


def test_file_with_base64_text(tmp_path: Path) -> None:
    file = tmp_path / "root.key"
    file.write_text(base64.b64encode(ROOT).decode() + "\n")
    file.chmod(0o600)
    assert load_local_root_key(env_value=None, file=file, create_if_missing=False) == ROOT


def test_missing_file_is_created_private(tmp_path: Path) -> None:
    file = tmp_path / "state" / "keys" / "root.key"

    with capture_logs() as logs:
        created = load_local_root_key(env_value=None, file=file, create_if_missing=True)

    assert len(created) == 32
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert stat.S_IMODE(file.parent.stat().st_mode) == 0o700
    assert base64.b64decode(file.read_text().strip()) == created
    assert [entry["event"] for entry in logs] == ["local_root_key_created"]
    assert_no_key_material(repr(logs), created)
    assert load_local_root_key(env_value=None, file=file, create_if_missing=True) == created


def test_created_keys_are_random(tmp_path: Path) -> None:
    first = load_local_root_key(env_value=None, file=tmp_path / "a", create_if_missing=True)
    second = load_local_root_key(env_value=None, file=tmp_path / "b", create_if_missing=True)
    assert first != second


def test_open_file_permissions_are_warned_about(tmp_path: Path) -> None:
    file = tmp_path / "root.key"
    file.write_bytes(ROOT)
    file.chmod(0o644)
    with capture_logs() as logs:
        load_local_root_key(env_value=None, file=file, create_if_missing=False)
    assert [entry["event"] for entry in logs] == ["local_root_key_file_permissions_too_open"]


def test_missing_file_without_creation(tmp_path: Path) -> None:
    file = tmp_path / "absent.key"
    with pytest.raises(InvalidInput, match="does not exist"):
        load_local_root_key(env_value=None, file=file, create_if_missing=False)
    assert not file.exists()


def test_nothing_configured() -> None:
    with pytest.raises(InvalidInput, match="no local root key configured"):
        load_local_root_key(env_value=None, file=None, create_if_missing=True)


BAD_ENV_VALUES = [
    base64.b64encode(ROOT[:16]).decode(),  # 16 bytes
    base64.b64encode(ROOT + ROOT).decode(),  # 64 bytes
    "this is not base64 at all!!" + "A" * 20,
    base64.b64encode(ROOT).decode()[:-2] + "*=",
    "é" * 44,
]


@pytest.mark.parametrize("value", BAD_ENV_VALUES)
def test_bad_env_values_are_refused_without_echo(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        load_local_root_key(env_value=value, file=None, create_if_missing=False)
    err: EkmsError = info.value
    assert value.strip() not in str(err) and value.strip() not in repr(err)
    assert info.value.__cause__ is None
    assert info.value.field == "local_root_key"


@pytest.mark.parametrize(
    "content",
    [ROOT[:31], ROOT + b"\n\n", b"\xff" * 44, base64.b64encode(ROOT[:24]) + b"\n"],
    ids=["31-raw", "33-raw", "binary-44", "base64-24"],
)
def test_bad_files_are_refused_without_echo(tmp_path: Path, content: bytes) -> None:
    file = tmp_path / "root.key"
    file.write_bytes(content)
    file.chmod(0o600)
    with pytest.raises(InvalidInput) as info:
        load_local_root_key(env_value=None, file=file, create_if_missing=True)
    assert str(file) in str(info.value)
    assert_no_key_material(repr(info.value), content)
    assert file.read_bytes() == content  # never overwritten
