"""Client-side file encryption (ekms_client.files) over the real gRPC server (Postgres, moto's
KMS server): a file round trip through a data key sealed by ekms, the bound context, MAP
enforcement (``writer`` may seal, not open), a tampered or spliced file, rotation, and the
data-key and MAC methods of both clients. The sync client runs in a thread: the server shares the
test's event loop."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
import pytest
from ekms_client import AsyncEkmsClient, EkmsClient, EkmsRpcError, Target
from ekms_client.envelope import EnvelopeError, read_header
from ekms_client.files import decrypt_file, decrypt_stream, encrypt_file, encrypt_stream

from app.application.modules import rotate_module_key
from tests.e2e.conftest import ADMIN, BILLING, Ekms, mint

MODULE = Target.for_module(BILLING)
SEGMENT = 64 * 1024


def _client(ekms: Ekms, *roles: str, sub: str = "billing-svc") -> EkmsClient:
    return EkmsClient(ekms.address, token=mint(sub, *roles))


async def test_a_file_round_trip_and_what_is_refused(ekms: Ekms, tmp_path: Path) -> None:
    plain = tmp_path / "report.bin"
    plain.write_bytes(os.urandom(5 * SEGMENT + 123))
    sealed, back = tmp_path / "report.bin.ekms", tmp_path / "back.bin"

    def use_it() -> dict[str, object]:
        seen: dict[str, object] = {}
        with _client(ekms, "billing") as client:
            encrypt_file(client, MODULE, plain, sealed, context=b"tenant-7", segment_size=SEGMENT)
            decrypt_file(client, MODULE, sealed, back, context=b"tenant-7")
            seen["same"] = back.read_bytes() == plain.read_bytes()
            back.unlink()
            try:
                decrypt_file(client, MODULE, sealed, back, context=b"tenant-8")
            except EkmsRpcError as err:
                seen["wrong_context"] = (err.code, err.reason)
            tampered = bytearray(sealed.read_bytes())
            tampered[-SEGMENT] ^= 1
            (tmp_path / "tampered").write_bytes(bytes(tampered))
            try:
                decrypt_file(client, MODULE, tmp_path / "tampered", back, context=b"tenant-7")
            except EnvelopeError:
                seen["tampered"] = "EnvelopeError"
        with _client(ekms, "writer", sub="ingest") as writer:
            encrypt_file(writer, MODULE, plain, tmp_path / "by-writer", segment_size=SEGMENT)
            try:
                decrypt_file(writer, MODULE, tmp_path / "by-writer", back)
            except EkmsRpcError as err:
                seen["writer_opens"] = err.code
        seen["leftovers"] = sorted(p.name for p in tmp_path.iterdir())
        return seen

    seen = await asyncio.to_thread(use_it)
    assert seen == {
        "same": True,
        "wrong_context": (grpc.StatusCode.INVALID_ARGUMENT, "DECRYPTION_FAILED"),
        "tampered": "EnvelopeError",
        "writer_opens": grpc.StatusCode.PERMISSION_DENIED,
        # nothing written on a failure, no temporary file left behind
        "leftovers": ["by-writer", "report.bin", "report.bin.ekms", "tampered"],
    }


async def test_streams_of_two_files_do_not_splice_and_rotation_keeps_them_open(
    ekms: Ekms,
) -> None:
    def seal_two() -> tuple[bytes, bytes]:
        with _client(ekms, "billing") as client:
            one = b"".join(encrypt_stream(client, MODULE, [b"a" * 3000], segment_size=1024))
            two = b"".join(encrypt_stream(client, MODULE, iter([b"b" * 3000]), segment_size=1024))
        return one, two

    one, two = await asyncio.to_thread(seal_two)
    header_one, _ = read_header([one])
    header_two, _ = read_header([two])
    assert header_one.sealed_key != header_two.sealed_key  # one data key per stream
    spliced = header_one.raw + two[len(header_two.raw) :]
    await rotate_module_key(ekms.container.ctx, ADMIN, BILLING)

    def open_them() -> tuple[bytes, str]:
        with _client(ekms, "billing") as client:
            opened = b"".join(decrypt_stream(client, MODULE, [one]))
            try:
                b"".join(decrypt_stream(client, MODULE, [spliced]))
            except EnvelopeError as err:
                return opened, str(err)
        return opened, "opened"

    assert await asyncio.to_thread(open_them) == (b"a" * 3000, "the envelope does not verify")


async def test_data_key_methods_of_the_asyncio_client(ekms: Ekms) -> None:
    async with AsyncEkmsClient(ekms.address, token=mint("billing-svc", "billing")) as client:
        key = await client.generate_data_key(MODULE, context=b"c")
        assert len(key.plaintext_key) == 32 and key.key_version == 1
        assert key.plaintext_key.hex() not in repr(key)
        opened = await client.decrypt_data_key(MODULE, key.sealed_key, context=b"c")
        assert (opened.plaintext_key, opened.key_version) == (key.plaintext_key, 1)
        blind = await client.generate_data_key(MODULE, with_plaintext=False)
        assert blind.plaintext_key == b"" and blind.sealed_key
        assert len((await client.decrypt_data_key(MODULE, blind.sealed_key)).plaintext_key) == 32
        with pytest.raises(EkmsRpcError) as raised:
            await client.decrypt_data_key(MODULE, key.sealed_key, context=b"other")
        assert raised.value.reason == "DECRYPTION_FAILED"


async def test_mac_methods_of_both_clients_and_after_a_rotation(ekms: Ekms) -> None:
    async with AsyncEkmsClient(ekms.address, token=mint("billing-svc", "billing")) as client:
        made = await client.compute_mac(MODULE, b"alice@example.com", context=b"idx")
        assert (len(made.mac), made.key_version) == (54, 1)
        again = await client.compute_mac(MODULE, b"alice@example.com", context=b"idx")
        assert again.mac == made.mac  # a blind index: equal values, equal MACs
        assert await client.verify_mac(MODULE, b"alice@example.com", made.mac, context=b"idx") == 1
        with pytest.raises(EkmsRpcError) as mismatch:
            await client.verify_mac(MODULE, b"bob@example.com", made.mac, context=b"idx")
        assert mismatch.value.reason == "MAC_MISMATCH"
    await rotate_module_key(ekms.container.ctx, ADMIN, BILLING)

    def after_rotation() -> tuple[int, int, int]:
        with _client(ekms, "billing") as client:
            old = client.verify_mac(MODULE, b"alice@example.com", made.mac, context=b"idx")
            new = client.compute_mac(MODULE, b"alice@example.com", context=b"idx")
            searched = client.compute_mac(
                MODULE, b"alice@example.com", context=b"idx", key_version=1
            )
            assert searched.mac == made.mac  # an index made under v1 is still searchable
            return old, new.key_version, searched.key_version

    assert await asyncio.to_thread(after_rotation) == (1, 2, 1)
