"""KMIP's TTLV encoding (KMIP 1.4 spec, section 9.1), the subset ekms sends and reads.

Every item is::

    tag (3 bytes) || type (1 byte) || length (4 bytes, big-endian) || value, padded to 8 bytes

Integers, enumerations and intervals are 4 bytes (padded to 8), long integers, booleans and
date-times 8 bytes, text and byte strings their length (padded), a structure the items it holds.
Decoding checks every length against what is left and refuses anything else with
``TtlvError``; a value of a type this module does not read is kept as raw bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

MAX_DEPTH = 16


class TtlvError(ValueError):
    """A message that is not well-formed TTLV (the text never quotes the bytes)."""


class Type(IntEnum):
    STRUCTURE = 0x01
    INTEGER = 0x02
    LONG_INTEGER = 0x03
    BIG_INTEGER = 0x04
    ENUMERATION = 0x05
    BOOLEAN = 0x06
    TEXT_STRING = 0x07
    BYTE_STRING = 0x08
    DATE_TIME = 0x09
    INTERVAL = 0x0A


_FOUR_BYTES = {Type.INTEGER: ">i", Type.ENUMERATION: ">I", Type.INTERVAL: ">I"}
_EIGHT_BYTES = {Type.LONG_INTEGER: ">q", Type.DATE_TIME: ">q", Type.BOOLEAN: ">Q"}

Value = int | bool | str | bytes | tuple["Item", ...]


@dataclass(frozen=True, slots=True)
class Item:
    """One TTLV item. ``value`` is a tuple of items for a structure."""

    tag: int
    type: Type
    value: Value

    def __repr__(self) -> str:
        # Byte strings carry key material and ciphertexts: never shown.
        shown = f"<{len(self.value)} bytes>" if isinstance(self.value, bytes) else self.value
        return f"Item(tag={self.tag:#08x}, type={self.type.name}, value={shown!r})"

    @property
    def children(self) -> tuple[Item, ...]:
        if self.type is not Type.STRUCTURE or not isinstance(self.value, tuple):
            raise TtlvError(f"item {self.tag:#08x} is not a structure")
        return self.value

    def find(self, tag: int) -> Item | None:
        return next((child for child in self.children if child.tag == tag), None)

    def find_all(self, tag: int) -> Iterator[Item]:
        return (child for child in self.children if child.tag == tag)

    def get(self, tag: int) -> Item:
        found = self.find(tag)
        if found is None:
            raise TtlvError(f"structure {self.tag:#08x} lacks item {tag:#08x}")
        return found


def structure(tag: int, *children: Item) -> Item:
    return Item(tag, Type.STRUCTURE, tuple(children))


def integer(tag: int, value: int) -> Item:
    return Item(tag, Type.INTEGER, value)


def enumeration(tag: int, value: int) -> Item:
    return Item(tag, Type.ENUMERATION, value)


def text(tag: int, value: str) -> Item:
    return Item(tag, Type.TEXT_STRING, value)


def byte_string(tag: int, value: bytes) -> Item:
    return Item(tag, Type.BYTE_STRING, value)


def _padded(raw: bytes) -> bytes:
    return raw + b"\x00" * (-len(raw) % 8)


def encode(item: Item) -> bytes:
    value = item.value
    if item.type is Type.STRUCTURE:
        raw = b"".join(encode(child) for child in item.children)
        length = len(raw)
    elif item.type in _FOUR_BYTES and isinstance(value, int):
        raw, length = struct.pack(_FOUR_BYTES[item.type], value) + b"\x00" * 4, 4
    elif item.type in _EIGHT_BYTES and isinstance(value, int):
        raw, length = struct.pack(_EIGHT_BYTES[item.type], int(value)), 8
    elif item.type is Type.TEXT_STRING and isinstance(value, str):
        encoded = value.encode("utf-8")
        raw, length = _padded(encoded), len(encoded)
    elif item.type in (Type.BYTE_STRING, Type.BIG_INTEGER) and isinstance(value, bytes):
        raw, length = _padded(value), len(value)
    else:
        raise TtlvError(f"cannot encode a {type(value).__name__} as {item.type.name}")
    return item.tag.to_bytes(3, "big") + bytes([item.type]) + length.to_bytes(4, "big") + raw


def decode(data: bytes) -> Item:
    """The one item ``data`` holds (nothing may follow it)."""
    item, end = _decode_at(memoryview(data), 0, 0)
    if end != len(data):
        raise TtlvError("trailing bytes after the message")
    return item


def _decode_at(data: memoryview, offset: int, depth: int) -> tuple[Item, int]:
    if depth > MAX_DEPTH:
        raise TtlvError("structures nested too deeply")
    if len(data) - offset < 8:
        raise TtlvError("truncated item header")
    tag = int.from_bytes(data[offset : offset + 3], "big")
    try:
        kind = Type(data[offset + 3])
    except ValueError:
        raise TtlvError(f"unknown item type {data[offset + 3]:#04x}") from None
    length = int.from_bytes(data[offset + 4 : offset + 8], "big")
    start = offset + 8
    end = start + length + (-length % 8 if kind is not Type.STRUCTURE else 0)
    if end > len(data):
        raise TtlvError("item length exceeds the message")
    body = data[start : start + length]
    value: Value
    if kind is Type.STRUCTURE:
        children: list[Item] = []
        position = start
        while position < start + length:
            child, position = _decode_at(data[: start + length], position, depth + 1)
            children.append(child)
        value = tuple(children)
    elif kind in _FOUR_BYTES:
        if length != 4:
            raise TtlvError(f"{kind.name} of length {length}")
        value = struct.unpack(_FOUR_BYTES[kind], body)[0]
    elif kind in _EIGHT_BYTES:
        if length != 8:
            raise TtlvError(f"{kind.name} of length {length}")
        number = struct.unpack(_EIGHT_BYTES[kind], body)[0]
        value = bool(number) if kind is Type.BOOLEAN else number
    elif kind is Type.TEXT_STRING:
        try:
            value = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise TtlvError("text string is not UTF-8") from None
    else:
        value = bytes(body)
    return Item(tag, kind, value), end
