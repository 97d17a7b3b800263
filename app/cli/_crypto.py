"""``ekms encrypt``, ``ekms decrypt`` and ``ekms mac``: the data plane over REST (/crypto/...).

A value is sent to ``/crypto/encrypt`` or ``/crypto/decrypt``. With ``--in FILE --out FILE`` the
file is encrypted here, in the envelope format of docs/envelope-format.md, over a data key from
``/crypto/data-key`` (``/crypto/data-key/decrypt`` to open it): the file never travels to ekms,
and a file made here opens with ``ekms_client.files`` and the other way round. The envelope
module is pure (``cryptography`` only); this module is still only a client of the REST API.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from ekms_client.envelope import EnvelopeError, read_header, seal, unseal, write_all_or_nothing

from app.cli._http import Client
from app.cli._options import with_client
from app.cli._render import Output, dump, fail
from app.cli._rewrap import rewrap

_TEXT_PREFIX = "ekms:v1:"

ModuleOpt = Annotated[str | None, typer.Option("--module", help="a crypto module by name")]
TableOpt = Annotated[str | None, typer.Option("--table", help="with --column: a field")]
ColumnOpt = Annotated[str | None, typer.Option("--column", help="the field's column")]
ContextOpt = Annotated[
    str, typer.Option("--context", help="associated data (UTF-8); decrypt needs the same")
]
InOpt = Annotated[Path | None, typer.Option("--in", help="a file to encrypt or decrypt")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="where the result goes (with --in)")]


def register(cli: typer.Typer) -> None:
    """Adds the data-plane commands to the root ``ekms`` command."""
    cli.command("encrypt")(encrypt)
    cli.command("decrypt")(decrypt)
    cli.command("mac")(mac)
    cli.command("rewrap")(rewrap)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _body(
    module: str | None, table: str | None, column: str | None, context: str
) -> dict[str, Any]:
    if not module and not (table and column):
        raise fail("name a target: --module NAME, or --table T --column C")
    target = {"module": module} if module else {"table": table, "column": column}
    return {**target, "context": _b64(context.encode())}


def _files(source: Path | None, destination: Path | None) -> tuple[Path, Path] | None:
    if source is None and destination is None:
        return None
    if source is None or destination is None:
        raise fail("--in and --out go together")
    if not source.is_file():
        raise fail(f"no such file: {source}")
    return source, destination


@with_client
def encrypt(
    client: Client,
    value: Annotated[str | None, typer.Argument(help="the value (UTF-8); or --in/--out")] = None,
    module: ModuleOpt = None,
    table: TableOpt = None,
    column: ColumnOpt = None,
    context: ContextOpt = "",
    source: InOpt = None,
    destination: OutOpt = None,
) -> None:
    """Encrypt a value (prints its ciphertext), or a file into the envelope format."""
    body = _body(module, table, column, context)
    files = _files(source, destination)
    if files is None:
        if value is None:
            raise fail("give a value, or --in FILE --out FILE")
        data = client.call(
            "POST", "/crypto/encrypt", body={**body, "plaintext": _b64(value.encode())}
        )
        _print(client.output, data, data["ciphertext"])
        return
    key = client.call("POST", "/crypto/data-key", body=body)
    sealed = _binary(key["sealed_key"])
    with files[0].open("rb") as reader:
        write_all_or_nothing(seal(base64.b64decode(key["plaintext_key"]), sealed, reader), files[1])
    _print(client.output, {"out": str(files[1]), "key_version": key["key_version"]}, str(files[1]))


@with_client
def decrypt(
    client: Client,
    ciphertext: Annotated[str | None, typer.Argument(help="`ekms:v1:...`; or --in/--out")] = None,
    module: ModuleOpt = None,
    table: TableOpt = None,
    column: ColumnOpt = None,
    context: ContextOpt = "",
    source: InOpt = None,
    destination: OutOpt = None,
) -> None:
    """Decrypt a value (prints the plaintext), or an envelope file (written only if it verifies)."""
    body = _body(module, table, column, context)
    files = _files(source, destination)
    if files is None:
        if ciphertext is None:
            raise fail("give a ciphertext, or --in FILE --out FILE")
        data = client.call("POST", "/crypto/decrypt", body={**body, "ciphertext": ciphertext})
        if client.output is Output.TABLE:
            sys.stdout.buffer.write(base64.b64decode(data["plaintext"]) + b"\n")
        else:
            dump(data, client.output)
        return
    with files[0].open("rb") as reader:
        try:
            header, _ = read_header(reader)
        except EnvelopeError:
            raise fail("the envelope does not verify") from None
        opened = client.call(
            "POST",
            "/crypto/data-key/decrypt",
            body={**body, "sealed_key": _text(header.sealed_key)},
        )
        reader.seek(0)
        try:
            write_all_or_nothing(
                unseal(base64.b64decode(opened["plaintext_key"]), reader), files[1]
            )
        except EnvelopeError:
            raise fail("the envelope does not verify") from None
    _print(
        client.output, {"out": str(files[1]), "key_version": opened["key_version"]}, str(files[1])
    )


@with_client
def mac(
    client: Client,
    value: Annotated[str, typer.Argument(help="the value (UTF-8)")],
    module: ModuleOpt = None,
    table: TableOpt = None,
    column: ColumnOpt = None,
    context: ContextOpt = "",
    verify: Annotated[str | None, typer.Option("--verify", help="check this MAC instead")] = None,
) -> None:
    """The blind-index MAC of a value (base64), or ``--verify MAC`` (exit 1 when it does not)."""
    body = {**_body(module, table, column, context), "value": _b64(value.encode())}
    if verify is None:
        data = client.call("POST", "/crypto/mac", body=body)
        _print(client.output, data, data["mac"])
        return
    data = client.call("POST", "/crypto/mac/verify", body={**body, "mac": verify})
    _print(client.output, data, f"verified (key version {data['key_version']})")


def _print(output: Output, data: Any, line: str) -> None:
    if output is Output.TABLE:
        typer.echo(line)
    else:
        dump(data, output)


def _binary(text: str) -> bytes:
    """The binary form of a ciphertext's ``ekms:v1:`` text form (unpadded base64url)."""
    encoded = text.removeprefix(_TEXT_PREFIX)
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))


def _text(binary: bytes) -> str:
    return _TEXT_PREFIX + base64.urlsafe_b64encode(binary).rstrip(b"=").decode("ascii")
