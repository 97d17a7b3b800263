"""Issue 18 follow-ups: XKS keys resident in the PKCS#11 HSM (SoftHSM2), and the loose ends.

The real ``ekms serve`` listeners on loopback (``test_xks_proxy.make_world``) with the
pkcs11 provider's token set up; every XKS call signed by botocore's signer; the customer's HSM
officer looks at the token from a separate process (``tests.fixtures.pkcs11_admin``).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.rest_support import ADMIN, AUDITOR, KEY_MANAGER, auth
from tests.e2e.test_xks_proxy import (
    REGION,
    World,
    decrypt_body,
    encrypt,
    error_name,
    make_world,
)
from tests.e2e.xks_support import metadata
from tests.fixtures.pkcs11 import HsmAdmin, SoftHsmToken


@pytest.fixture
async def hsm_world(tmp_path: Path, pkcs11_token: SoftHsmToken) -> AsyncIterator[World]:
    async with make_world(
        tmp_path,
        pkcs11_library=pkcs11_token.library,
        pkcs11_token_label=pkcs11_token.label,
        pkcs11_pin=pkcs11_token.pin,
    ) as w:
        yield w


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with make_world(tmp_path) as w:
        yield w


def label_of(key: dict[str, object]) -> str:
    return f"ekms-xks-{key['id']}"


async def test_a_pkcs11_key_is_generated_in_the_token_and_never_extractable(
    hsm_world: World, hsm_admin: HsmAdmin
) -> None:
    key = await hsm_world.new_key(external_key_id="hsm-1", backend="pkcs11")
    assert key["backend"] == "pkcs11" and key["status"] == "ENABLED"
    assert hsm_world.key["backend"] == "ekms"  # the default is unchanged
    (obj,) = hsm_admin.show(label_of(key))
    assert obj == {
        "label": label_of(key),
        "token": True,
        "sensitive": True,
        "extractable": False,
        "encrypt": True,
        "decrypt": True,
        "wrap": False,
        "unwrap": False,
        "sign": False,
        "key_type": "AES",
        "value_len": 32,
    }
    listed = await hsm_world.admin("GET", "/api/v1/xks/keys", AUDITOR)
    assert {k["external_key_id"]: k["backend"] for k in listed["items"]} == {
        "payments-1": "ekms",
        "hsm-1": "pkcs11",
    }
    body = {"requestMetadata": metadata("DescribeKey")}
    answer = await hsm_world.xks.call("/keys/hsm-1/metadata", body)
    assert answer.json() == {
        "keySpec": "AES_256",
        "keyUsage": ["DECRYPT", "ENCRYPT"],
        "keyStatus": "ENABLED",
    }


async def test_the_hsm_encrypts_and_decrypts_with_the_spec_aad_iv_and_tag(
    hsm_world: World, hsm_admin: HsmAdmin
) -> None:
    key = await hsm_world.new_key(external_key_id="hsm-1", backend="pkcs11")
    aad = b"volume=vol-0123"
    response = await encrypt(
        hsm_world, b"a data key", aad, key="hsm-1", ciphertextDataIntegrityValueAlgorithm="SHA_256"
    )
    assert response.status_code == 200, response.text
    sealed = response.json()
    assert len(base64.b64decode(sealed["ciphertext"])) == len(b"a data key")
    assert len(base64.b64decode(sealed["initializationVector"])) == 12
    assert len(base64.b64decode(sealed["authenticationTag"])) == 16
    assert base64.b64decode(sealed["ciphertextMetadata"]) == b"ekms-xks-v1"
    assert "ciphertextDataIntegrityValue" in sealed
    path = "/keys/hsm-1/decrypt"
    opened = await hsm_world.xks.call(path, decrypt_body(sealed, aad))
    assert opened.status_code == 200, opened.text
    assert base64.b64decode(opened.json()["plaintext"]) == b"a data key"

    # The AAD, the tag and the key are checked by the token: one opaque error each time.
    wrong_aad = await hsm_world.xks.call(path, decrypt_body(sealed, b"volume=vol-9"))
    assert error_name(wrong_aad) == (400, "InvalidCiphertextException")
    tag = bytearray(base64.b64decode(sealed["authenticationTag"]))
    tag[-1] ^= 1
    spoiled = decrypt_body({**sealed, "authenticationTag": base64.b64encode(tag).decode()}, aad)
    assert error_name(await hsm_world.xks.call(path, spoiled)) == (
        400,
        "InvalidCiphertextException",
    )
    other = await hsm_world.xks.call("/keys/payments-1/decrypt", decrypt_body(sealed, aad))
    assert error_name(other) == (400, "InvalidCiphertextException")

    # The work is the token's: once the officer destroys the object, nothing opens.
    hsm_admin.destroy(label_of(key))
    gone = await hsm_world.xks.call(path, decrypt_body(sealed, aad))
    assert error_name(gone) == (400, "InvalidStateException")


async def test_disable_enable_kek_rotation_and_delete_of_a_pkcs11_key(
    hsm_world: World, hsm_admin: HsmAdmin
) -> None:
    key = await hsm_world.new_key(external_key_id="hsm-1", backend="pkcs11")
    sealed = (await encrypt(hsm_world, b"kept", key="hsm-1")).json()
    path = "/keys/hsm-1/decrypt"
    await hsm_world.admin(
        "PATCH", f"/api/v1/xks/keys/{key['id']}", KEY_MANAGER, json={"enabled": False}
    )
    stopped = await hsm_world.xks.call(path, decrypt_body(sealed))
    assert error_name(stopped) == (400, "InvalidStateException")
    await hsm_world.admin(
        "PATCH", f"/api/v1/xks/keys/{key['id']}", KEY_MANAGER, json={"enabled": True}
    )
    assert (await hsm_world.xks.call(path, decrypt_body(sealed))).status_code == 200

    # Two keys (one sealed in the chain, one HSM object label) and the store's one secret.
    rotation = await hsm_world.admin("POST", "/api/v1/ekms/kek/rotate", KEY_MANAGER)
    assert rotation["resealed_xks"] == 3
    after = await hsm_world.xks.call(path, decrypt_body(sealed))
    assert base64.b64decode(after.json()["plaintext"]) == b"kept"

    await hsm_world.admin("DELETE", f"/api/v1/xks/keys/{key['id']}", KEY_MANAGER)
    assert hsm_admin.show(label_of(key)) == []  # destroyed in the token, not only forgotten
    body = {"requestMetadata": metadata("DescribeKey")}
    missing = await hsm_world.xks.call("/keys/hsm-1/metadata", body)
    assert error_name(missing) == (404, "KeyNotFoundException")


async def test_deleting_a_store_destroys_its_hsm_objects(
    hsm_world: World, hsm_admin: HsmAdmin
) -> None:
    key = await hsm_world.new_key(external_key_id="hsm-1", backend="pkcs11")
    assert len(hsm_admin.show(label_of(key))) == 1
    await hsm_world.admin("DELETE", f"/api/v1/xks/stores/{hsm_world.store['id']}")
    assert hsm_admin.show(label_of(key)) == []


async def test_a_taken_external_key_id_leaves_no_object_behind(
    hsm_world: World, hsm_admin: HsmAdmin
) -> None:
    body = {"store_id": hsm_world.store["id"], "external_key_id": "payments-1"}
    taken = await hsm_world.rest.post(
        "/api/v1/xks/keys", headers=auth(KEY_MANAGER), json={**body, "backend": "pkcs11"}
    )
    assert taken.status_code == 409, taken.text
    listed = await hsm_world.admin("GET", "/api/v1/xks/keys", AUDITOR)
    assert len(listed["items"]) == 1
    assert hsm_admin.show("*") == []  # the object made for it was destroyed again


async def test_pkcs11_without_a_token_is_a_problem_not_a_key(world: World) -> None:
    body = {"store_id": world.store["id"], "external_key_id": "hsm-1", "backend": "pkcs11"}
    refused = await world.rest.post("/api/v1/xks/keys", headers=auth(KEY_MANAGER), json=body)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    unknown = await world.rest.post(
        "/api/v1/xks/keys", headers=auth(KEY_MANAGER), json={**body, "backend": "tpm"}
    )
    assert unknown.status_code == 422
    listed = await world.admin("GET", "/api/v1/xks/keys", AUDITOR)
    assert [k["external_key_id"] for k in listed["items"]] == ["payments-1"]


async def test_a_store_region_changes_through_patch_and_is_audited(world: World) -> None:
    path, body = "/keys/payments-1/metadata", {"requestMetadata": metadata("DescribeKey")}
    store = world.store["id"]
    moved = await world.admin(
        "PATCH", f"/api/v1/xks/stores/{store}", ADMIN, json={"region": "us-west-2"}
    )
    assert moved["region"] == "us-west-2"
    assert error_name(await world.xks.call(path, body)) == (401, "AuthenticationFailedException")
    assert (await world.xks.call(path, body, region="us-west-2")).status_code == 200
    bad = await world.rest.patch(
        f"/api/v1/xks/stores/{store}", headers=auth(ADMIN), json={"region": "mars"}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "region"
    by_key_manager = await world.rest.patch(
        f"/api/v1/xks/stores/{store}", headers=auth(KEY_MANAGER), json={"region": REGION}
    )
    assert by_key_manager.status_code == 403
    events = await world.admin(
        "GET", "/api/v1/audit", AUDITOR, params={"action": "xks.store.region"}
    )
    assert [(e["details"]["old_region"], e["details"]["region"]) for e in events["items"]] == [
        (REGION, "us-west-2")
    ]
