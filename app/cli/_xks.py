"""``ekms xks stores|keys``: the AWS KMS external key stores and their keys (REST client).

A store's SigV4 secret is printed once, by ``stores create`` and ``stores rotate``, as the JSON
file the AWS KMS console accepts (``XksProxyUriPath``, ``XksProxyAuthenticationCredential``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from app.cli._http import Client
from app.cli._options import YesOpt, delete, with_client
from app.cli._render import Output, done, listing, record, styled

xks = typer.Typer(no_args_is_help=True, help="AWS KMS external key stores (XKS proxy).")
stores = typer.Typer(no_args_is_help=True, help="External key stores (ekms.admin).")
keys = typer.Typer(no_args_is_help=True, help="Their AES-256 keys (ekms.key_manager).")
xks.add_typer(stores, name="stores")
xks.add_typer(keys, name="keys")

STORES, KEYS = "/xks/stores", "/xks/keys"
UsageOpt = Annotated[
    list[str] | None, typer.Option("--usage", help="ENCRYPT and/or DECRYPT (default both)")
]
PrincipalOpt = Annotated[
    list[str] | None, typer.Option("--allow-principal", help="only this awsPrincipalArn")
]
OperationOpt = Annotated[
    list[str] | None, typer.Option("--allow-operation", help="only this kmsOperation")
]


def _console_file(store: dict[str, Any]) -> dict[str, Any]:
    issued = store["issued_credential"]
    return {
        "XksProxyUriPath": store["xks_proxy_uri_path"],
        "XksProxyAuthenticationCredential": issued,
    }


def _issued(client: Client, store: dict[str, Any], what: str) -> None:
    if client.output is Output.TABLE:
        typer.echo(f"{what}; the secret is shown this once. AWS KMS console file:")
        typer.echo(json.dumps(_console_file(store), indent=2))
    else:
        done(client.output, store, "")


@stores.command("list")
@with_client
def stores_list(client: Client) -> None:
    """List the external key stores."""
    listing(
        client.call("GET", STORES)["items"],
        client.output,
        "external key stores",
        ["id", "name", "XksProxyUriPath", "region", "access key ids"],
        lambda s: [
            s["id"],
            s["name"],
            s["xks_proxy_uri_path"],
            s["region"],
            " ".join(c["access_key_id"] for c in s["credentials"]),
        ],
    )


@stores.command("create")
@with_client
def stores_create(client: Client, name: str, region: str, uri_prefix: str = "") -> None:
    """Create a store (AWS calls it under URI_PREFIX/kms/xks/v1, signed for REGION)."""
    body = {"name": name, "region": region, "uri_prefix": uri_prefix}
    _issued(client, client.call("POST", STORES, body=body), f"store {name} created")


@stores.command("show")
@with_client
def stores_show(client: Client, store_id: str) -> None:
    """One store."""
    record(client.call("GET", f"{STORES}/{store_id}"), client.output, "external key store")


@stores.command("rotate")
@with_client
def stores_rotate(client: Client, store_id: str) -> None:
    """Add a second SigV4 credential (both are accepted until one is removed)."""
    store = client.call("PATCH", f"{STORES}/{store_id}", body={"add_credential": True})
    _issued(client, store, "second credential added")


@stores.command("remove-credential")
@with_client
def stores_remove_credential(client: Client, store_id: str, access_key_id: str) -> None:
    """Stop accepting one SigV4 credential (after AWS uses the new one)."""
    body = {"remove_access_key_id": access_key_id}
    store = client.call("PATCH", f"{STORES}/{store_id}", body=body)
    done(client.output, store, f"credential {access_key_id} removed")


@stores.command("set-region")
@with_client
def stores_set_region(client: Client, store_id: str, region: str) -> None:
    """Sign-check the store's requests for another AWS region (audited)."""
    store = client.call("PATCH", f"{STORES}/{store_id}", body={"region": region})
    done(client.output, store, f"store {store['name']} now in {store['region']}")


@stores.command("delete")
@with_client
def stores_delete(client: Client, store_id: str, yes: YesOpt = False) -> None:
    """Delete a store and all its keys (data AWS sealed under them is lost)."""
    delete(client, f"{STORES}/{store_id}", "external key store", store_id, yes=yes)


@keys.command("list")
@with_client
def keys_list(client: Client) -> None:
    """List the keys of every store."""
    listing(
        client.call("GET", KEYS)["items"],
        client.output,
        "external key store keys",
        ["id", "store", "externalKeyId", "backend", "usage", "status"],
        lambda k: [
            k["id"],
            k["store_id"],
            k["external_key_id"],
            k["backend"],
            ",".join(k["usage"]),
            styled(k["status"].lower()),
        ],
    )


@keys.command("create")
@with_client
def keys_create(
    client: Client,
    store_id: str,
    external_key_id: Annotated[str | None, typer.Option(help="default: the key's id")] = None,
    usage: UsageOpt = None,
    allow_principal: PrincipalOpt = None,
    allow_operation: OperationOpt = None,
    backend: Annotated[
        str, typer.Option(help="ekms (sealed under the KEK) or pkcs11 (resident in the HSM)")
    ] = "ekms",
) -> None:
    """Create an AES-256 key in a store: give AWS its externalKeyId."""
    body: dict[str, Any] = {"store_id": store_id, "external_key_id": external_key_id}
    body["backend"] = backend.lower()
    if usage:
        body["usage"] = [u.upper() for u in usage]
    body["allowed_principals"] = allow_principal or []
    body["allowed_operations"] = allow_operation or []
    key = client.call("POST", KEYS, body=body)
    done(client.output, key, f"key created: externalKeyId {key['external_key_id']}")


@keys.command("show")
@with_client
def keys_show(client: Client, key_id: str) -> None:
    """One key."""
    record(client.call("GET", f"{KEYS}/{key_id}"), client.output, "external key store key")


def _set_enabled(client: Client, key_id: str, enabled: bool) -> None:
    key = client.call("PATCH", f"{KEYS}/{key_id}", body={"enabled": enabled})
    done(client.output, key, f"key {key['external_key_id']} {key['status'].lower()}")


@keys.command("enable")
@with_client
def keys_enable(client: Client, key_id: str) -> None:
    """Enable a key."""
    _set_enabled(client, key_id, True)


@keys.command("disable")
@with_client
def keys_disable(client: Client, key_id: str) -> None:
    """Disable a key: AWS calls on it answer InvalidStateException at once."""
    _set_enabled(client, key_id, False)


@keys.command("delete")
@with_client
def keys_delete(client: Client, key_id: str, yes: YesOpt = False) -> None:
    """Delete a key (data AWS sealed under it is lost for good)."""
    delete(client, f"{KEYS}/{key_id}", "external key store key", key_id, yes=yes)
