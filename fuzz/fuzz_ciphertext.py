"""Atheris target: the ciphertext parsers (binary and text form) and the data-key decrypt.

Input: one selector byte, then the payload. The selector's low bit picks the form (0 binary,
1 text, ``ekms:v1:...``); the rest picks one of the known-answer vectors of
docs/ciphertext-vectors.json, whose key, binding and context open the payload.

Allowed outcomes: ``DecryptionFailed`` (the one opaque error), or a successful decrypt of a
genuine vector ciphertext (some vectors share a key, binding and context), giving its
plaintext. Anything else (another exception, a plaintext for any other bytes) is a crash.
Seeds: every vector, in both forms.

    uv run python fuzz/fuzz_ciphertext.py -max_total_time=60 [CORPUS_DIR]
"""

from __future__ import annotations

import json
import uuid

import atheris

with atheris.instrument_imports(include=["app"]):
    from app.domain import ciphertext as ct
    from app.domain.errors import DecryptionFailed
    from app.domain.keys import DataKey
    from app.domain.values import Algorithm

from fuzz._common import ROOT, prepare_argv

VECTORS = json.loads((ROOT / "docs" / "ciphertext-vectors.json").read_text())["field_vectors"]


class Vector:
    def __init__(self, v: dict[str, object]) -> None:
        self.key = DataKey(
            Algorithm.from_label(str(v["algorithm"])),
            uuid.UUID(str(v["module_id"])),
            int(str(v["key_version"])),
            bytes.fromhex(str(v["key_hex"])),
        )
        self.binding = str(v["binding"]).encode()
        self.context = bytes.fromhex(str(v["context_hex"]))
        self.plaintext = bytes.fromhex(str(v["plaintext_hex"]))
        self.ciphertext = bytes.fromhex(str(v["ciphertext_hex"]))
        self.text = str(v["ciphertext_text"])


KNOWN = [Vector(v) for v in VECTORS]
GENUINE = {(v.ciphertext, v.plaintext) for v in KNOWN}


def seeds() -> list[bytes]:
    out = []
    for index, vector in enumerate(KNOWN):
        out.append(bytes([index << 1]) + vector.ciphertext)
        out.append(bytes([index << 1 | 1]) + vector.text.encode())
    return out


def test_one_input(data: bytes) -> None:
    if not data:
        return
    selector, payload = data[0], data[1:]
    vector = KNOWN[(selector >> 1) % len(KNOWN)]
    try:
        if selector & 1:
            blob = ct.from_text(payload.decode("utf-8", errors="surrogateescape"))
        else:
            blob = payload
        parsed = ct.parse(blob)
        plaintext = vector.key.decrypt(parsed, vector.binding, vector.context)
    except DecryptionFailed:
        return
    if (blob, plaintext) not in GENUINE:
        raise AssertionError("a ciphertext that was never sealed decrypted")


def main() -> None:
    atheris.Setup(prepare_argv("ciphertext", seeds()), test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
