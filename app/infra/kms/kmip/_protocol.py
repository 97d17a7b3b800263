"""KMIP 1.4 request and response messages for the operations ekms uses.

Only KMIP 1.4 (and later 1.x) carries the authenticated-encryption fields (additional data and
tag) of Encrypt / Decrypt: a server spoken to in 1.2 drops them silently, so every request here
says 1.4, and a response without a tag is refused by the caller. Numbers are the spec's
(KMIP 1.4, section 9.1.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum

from app.infra.kms.kmip._ttlv import (
    Item,
    TtlvError,
    Type,
    byte_string,
    decode,
    encode,
    enumeration,
    integer,
    structure,
    text,
)

PROTOCOL_VERSION = (1, 4)


class Tag(IntEnum):
    ATTRIBUTE = 0x420008
    ATTRIBUTE_INDEX = 0x420009
    ATTRIBUTE_NAME = 0x42000A
    ATTRIBUTE_VALUE = 0x42000B
    BATCH_COUNT = 0x42000D
    BATCH_ITEM = 0x42000F
    BLOCK_CIPHER_MODE = 0x420011
    CRYPTOGRAPHIC_ALGORITHM = 0x420028
    CRYPTOGRAPHIC_PARAMETERS = 0x42002B
    IV_COUNTER_NONCE = 0x42003D
    LINK = 0x42004A
    LINK_TYPE = 0x42004B
    LINKED_OBJECT_IDENTIFIER = 0x42004C
    OPERATION = 0x42005C
    PROTOCOL_VERSION = 0x420069
    PROTOCOL_VERSION_MAJOR = 0x42006A
    PROTOCOL_VERSION_MINOR = 0x42006B
    REQUEST_HEADER = 0x420077
    REQUEST_MESSAGE = 0x420078
    REQUEST_PAYLOAD = 0x420079
    RESPONSE_HEADER = 0x42007A
    RESPONSE_MESSAGE = 0x42007B
    RESPONSE_PAYLOAD = 0x42007C
    RESULT_MESSAGE = 0x42007D
    RESULT_REASON = 0x42007E
    RESULT_STATUS = 0x42007F
    UNIQUE_IDENTIFIER = 0x420094
    DATA = 0x4200C2
    TAG_LENGTH = 0x4200CE
    AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA = 0x4200FE
    AUTHENTICATED_ENCRYPTION_TAG = 0x4200FF


class Operation(IntEnum):
    GET_ATTRIBUTES = 0x0B
    ENCRYPT = 0x1F
    DECRYPT = 0x20


class State(IntEnum):
    PRE_ACTIVE = 1
    ACTIVE = 2
    DEACTIVATED = 3
    COMPROMISED = 4
    DESTROYED = 5
    DESTROYED_COMPROMISED = 6


REPLACEMENT_OBJECT_LINK = 0x00000106
_AES = 0x03
_GCM = 0x09
GCM_TAG_LENGTH = 16
_SUCCESS = 0


class KmipOperationFailed(Exception):
    """The server answered a request with a failure. Only numbers: the server's own message
    text is dropped, since it may quote the request."""

    def __init__(self, operation: Operation, result_reason: int | None) -> None:
        self.operation = operation
        self.result_reason = result_reason
        super().__init__(f"KMIP {operation.name} failed (result reason {result_reason})")


# --- requests -----------------------------------------------------------------------------


def request(operation: Operation, *payload: Item) -> bytes:
    major, minor = PROTOCOL_VERSION
    header = structure(
        Tag.REQUEST_HEADER,
        structure(
            Tag.PROTOCOL_VERSION,
            integer(Tag.PROTOCOL_VERSION_MAJOR, major),
            integer(Tag.PROTOCOL_VERSION_MINOR, minor),
        ),
        integer(Tag.BATCH_COUNT, 1),
    )
    batch = structure(
        Tag.BATCH_ITEM,
        enumeration(Tag.OPERATION, operation),
        structure(Tag.REQUEST_PAYLOAD, *payload),
    )
    return encode(structure(Tag.REQUEST_MESSAGE, header, batch))


def _gcm_parameters() -> Item:
    # Order as in the spec's Cryptographic Parameters structure.
    return structure(
        Tag.CRYPTOGRAPHIC_PARAMETERS,
        enumeration(Tag.BLOCK_CIPHER_MODE, _GCM),
        enumeration(Tag.CRYPTOGRAPHIC_ALGORITHM, _AES),
        integer(Tag.TAG_LENGTH, GCM_TAG_LENGTH),
    )


def encrypt_request(uid: str, data: bytes, nonce: bytes, aad: bytes) -> bytes:
    return _gcm_request(Operation.ENCRYPT, uid, data, nonce, aad)


def decrypt_request(uid: str, data: bytes, nonce: bytes, aad: bytes, tag: bytes) -> bytes:
    tag_item = byte_string(Tag.AUTHENTICATED_ENCRYPTION_TAG, tag)
    return _gcm_request(Operation.DECRYPT, uid, data, nonce, aad, tag_item)


def _gcm_request(
    operation: Operation, uid: str, data: bytes, nonce: bytes, aad: bytes, *more: Item
) -> bytes:
    """An AES-GCM Encrypt or Decrypt of ``data`` under key ``uid``; ``more`` follows the AAD."""
    return request(
        operation,
        text(Tag.UNIQUE_IDENTIFIER, uid),
        _gcm_parameters(),
        byte_string(Tag.DATA, data),
        byte_string(Tag.IV_COUNTER_NONCE, nonce),
        byte_string(Tag.AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA, aad),
        *more,
    )


KEY_ATTRIBUTES = ("State", "Link", "Initial Date")


def get_attributes_request(uid: str, names: tuple[str, ...] = KEY_ATTRIBUTES) -> bytes:
    return request(
        Operation.GET_ATTRIBUTES,
        text(Tag.UNIQUE_IDENTIFIER, uid),
        *(text(Tag.ATTRIBUTE_NAME, name) for name in names),
    )


# --- responses ----------------------------------------------------------------------------


def response_payload(operation: Operation, data: bytes) -> Item:
    """The payload of a one-item response; ``KmipOperationFailed`` when the server refused."""
    message = decode(data)
    if message.tag != Tag.RESPONSE_MESSAGE:
        raise TtlvError("not a KMIP response message")
    items = list(message.find_all(Tag.BATCH_ITEM))
    if len(items) != 1:
        raise TtlvError("the response does not hold exactly one batch item")
    item = items[0]
    echoed = item.find(Tag.OPERATION)
    status = item.get(Tag.RESULT_STATUS).value
    if status != _SUCCESS:
        reason = item.find(Tag.RESULT_REASON)
        raise KmipOperationFailed(operation, _int(reason) if reason else None)
    if echoed is None or echoed.value != operation:
        raise TtlvError("the response answers another operation")
    return item.get(Tag.RESPONSE_PAYLOAD)


def _int(item: Item) -> int:
    if isinstance(item.value, bool) or not isinstance(item.value, int):
        raise TtlvError(f"item {item.tag:#08x} is not a number")
    return item.value


def _bytes(payload: Item, tag: Tag) -> bytes | None:
    found = payload.find(tag)
    if found is None:
        return None
    if not isinstance(found.value, bytes):
        raise TtlvError(f"item {tag.name} is not a byte string")
    return found.value


def _text(item: Item, tag: Tag) -> str:
    value = item.get(tag).value
    if not isinstance(value, str):
        raise TtlvError(f"item {tag.name} is not a text string")
    return value


@dataclass(frozen=True, slots=True)
class Encrypted:
    uid: str
    data: bytes = field(repr=False)
    tag: bytes | None = field(repr=False)


def parse_encrypt(data: bytes) -> Encrypted:
    payload = response_payload(Operation.ENCRYPT, data)
    return Encrypted(
        uid=_text(payload, Tag.UNIQUE_IDENTIFIER),
        data=_bytes(payload, Tag.DATA) or b"",
        tag=_bytes(payload, Tag.AUTHENTICATED_ENCRYPTION_TAG),
    )


def parse_decrypt(data: bytes) -> bytes:
    return _bytes(response_payload(Operation.DECRYPT, data), Tag.DATA) or b""


@dataclass(frozen=True, slots=True)
class KeyAttributes:
    """What GetAttributes said about one key. ``state`` is None when the server did not say."""

    uid: str
    state: int | None
    replacement: str | None
    initial_date: datetime | None


def parse_key_attributes(data: bytes) -> KeyAttributes:
    payload = response_payload(Operation.GET_ATTRIBUTES, data)
    state: int | None = None
    replacement: str | None = None
    initial: datetime | None = None
    for attribute in payload.find_all(Tag.ATTRIBUTE):
        name = _text(attribute, Tag.ATTRIBUTE_NAME)
        value = attribute.get(Tag.ATTRIBUTE_VALUE)
        if name == "State" and value.type is Type.ENUMERATION:
            state = _int(value)
        elif name == "Initial Date" and value.type is Type.DATE_TIME:
            try:
                initial = datetime.fromtimestamp(_int(value), tz=UTC)
            except (OverflowError, OSError, ValueError):
                initial = None  # informational only: a date out of range is not an error
        elif name == "Link" and value.type is Type.STRUCTURE:
            kind = value.get(Tag.LINK_TYPE).value
            if kind == REPLACEMENT_OBJECT_LINK:
                replacement = _text(value, Tag.LINKED_OBJECT_IDENTIFIER)
    return KeyAttributes(
        uid=_text(payload, Tag.UNIQUE_IDENTIFIER),
        state=state,
        replacement=replacement,
        initial_date=initial,
    )
