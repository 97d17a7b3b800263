"""What the sync and async clients share: messages in and out, metadata, retries, defaults."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import TypeAlias

import grpc

from ekms_client._errors import EkmsRpcError
from ekms_client._types import (
    DataKey,
    Decrypted,
    DecryptItem,
    Encrypted,
    EncryptItem,
    ItemResult,
    Mac,
    RetryPolicy,
    Rewrapped,
    Target,
)
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb

DEFAULT_DEADLINE = 5.0
"""Seconds each unary attempt may take (the gRPC deadline). Streams have none unless given."""

TokenSource: TypeAlias = str | Callable[[], str] | None
"""A bearer token, or a function returning the current one (called for every call)."""

Metadata = tuple[tuple[str, str], ...]
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


def refuse_token_in_clear(
    address: str, *, token: TokenSource, credentials: object | None, insecure: bool
) -> None:
    """``ValueError`` when a token would travel in clear beyond this host: a plaintext channel
    (no ``credentials``) to a target that is not loopback nor a Unix socket, and no
    ``insecure=True`` to say the network is trusted (a mesh sidecar doing mTLS, a test)."""
    if token is None or credentials is not None or insecure:
        return
    exposed = [host for host in target_hosts(address) if not _is_loopback(host)]
    if exposed:
        raise ValueError(
            f"refusing to send a bearer token over a plaintext channel to {address!r}: pass "
            "credentials=grpc.ssl_channel_credentials(...) for TLS, or insecure=True if the "
            "network between here and ekms is trusted"
        )


def target_hosts(address: str) -> list[str]:
    """The hosts a gRPC target names (``host:port``, ``[v6]:port``, ``dns:///host:port``,
    ``ipv4:a:p,b:p``, ``ipv6:[a]:p``); none for ``unix:`` and ``unix-abstract:`` sockets."""
    if address.startswith(("unix:", "unix-abstract:", "vsock:")):
        return []
    scheme, colon, rest = address.partition(":")
    if colon and scheme in ("dns", "ipv4", "ipv6"):
        if rest.startswith("//"):  # an authority (the DNS server): the name follows the "/"
            rest = rest[2:].partition("/")[2]
        parts = rest.split(",") if scheme != "dns" else [rest]
    else:
        parts = [address]
    return [_host(part.strip()) for part in parts]


def _host(host_port: str) -> str:
    if host_port.startswith("["):
        return host_port[1:].partition("]")[0]
    if host_port.count(":") > 1:  # a bare IPv6 address
        return host_port
    return host_port.rpartition(":")[0] if ":" in host_port else host_port


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def metadata(token: TokenSource) -> Metadata:
    if token is None:
        return ()
    value = token() if callable(token) else token
    return (("authorization", f"Bearer {value}"),)


def target_pb(target: Target) -> pb.Target:
    if target.module:
        return pb.Target(module=target.module)
    return pb.Target(field=pb.Field(table=target.table, column=target.column))


def optional_target_pb(target: Target | None) -> pb.Target | None:
    return target_pb(target) if target is not None else None


def encrypt_item_pb(item: EncryptItem) -> pb.EncryptItem:
    return pb.EncryptItem(
        id=item.id,
        target=optional_target_pb(item.target),
        plaintext=item.plaintext,
        context=item.context,
    )


def decrypt_item_pb(item: DecryptItem) -> pb.DecryptItem:
    return pb.DecryptItem(
        id=item.id,
        target=optional_target_pb(item.target),
        ciphertext=item.ciphertext,
        context=item.context,
    )


def encrypt_result(message: pb.EncryptResult) -> ItemResult:
    if message.status.code != 0:
        return ItemResult(message.id, error=EkmsRpcError.from_status(message.status))
    return ItemResult(message.id, data=message.ciphertext, key_version=message.key_version)


def decrypt_result(message: pb.DecryptResult) -> ItemResult:
    if message.status.code != 0:
        return ItemResult(message.id, error=EkmsRpcError.from_status(message.status))
    return ItemResult(message.id, data=message.plaintext, key_version=message.key_version)


def is_retryable(error: grpc.RpcError) -> bool:
    code = error.code() if hasattr(error, "code") else None
    return bool(code == UNAVAILABLE)


def backoff_or_raise(error: grpc.RpcError, attempt: int, retry: RetryPolicy) -> float:
    """The pause before attempt ``attempt + 1`` of a unary call; ``EkmsRpcError`` when
    ``error`` ends the call (not UNAVAILABLE, or no attempt left)."""
    if is_retryable(error) and attempt < retry.max_attempts:
        return retry.backoff(attempt)
    raise EkmsRpcError.from_rpc_error(error) from error


# --- the requests and answers of each RPC, the same for both call styles ------------------------


def encrypt_request(target: Target, plaintext: bytes, context: bytes) -> pb.EncryptRequest:
    return pb.EncryptRequest(target=target_pb(target), plaintext=plaintext, context=context)


def decrypt_request(target: Target, ciphertext: bytes, context: bytes) -> pb.DecryptRequest:
    return pb.DecryptRequest(target=target_pb(target), ciphertext=ciphertext, context=context)


def rewrap_request(target: Target, ciphertext: bytes, context: bytes) -> pb.RewrapRequest:
    return pb.RewrapRequest(target=target_pb(target), ciphertext=ciphertext, context=context)


def encrypted(response: pb.EncryptResponse) -> Encrypted:
    return Encrypted(response.ciphertext, response.key_version)


def decrypted(response: pb.DecryptResponse) -> Decrypted:
    return Decrypted(response.plaintext, response.key_version)


def rewrapped(response: pb.RewrapResponse) -> Rewrapped:
    return Rewrapped(response.ciphertext, response.key_version, response.changed)


def encrypt_batch_request(
    items: Iterable[EncryptItem], target: Target | None
) -> pb.EncryptBatchRequest:
    return pb.EncryptBatchRequest(
        target=optional_target_pb(target), items=[encrypt_item_pb(i) for i in items]
    )


def decrypt_batch_request(
    items: Iterable[DecryptItem], target: Target | None
) -> pb.DecryptBatchRequest:
    return pb.DecryptBatchRequest(
        target=optional_target_pb(target), items=[decrypt_item_pb(i) for i in items]
    )


def encrypt_results(response: pb.EncryptBatchResponse) -> list[ItemResult]:
    return [encrypt_result(r) for r in response.results]


def decrypt_results(response: pb.DecryptBatchResponse) -> list[ItemResult]:
    return [decrypt_result(r) for r in response.results]


def generate_data_key_request(target: Target, context: bytes) -> pb.GenerateDataKeyRequest:
    return pb.GenerateDataKeyRequest(target=target_pb(target), context=context)


def decrypt_data_key_request(
    target: Target, sealed_key: bytes, context: bytes
) -> pb.DecryptDataKeyRequest:
    return pb.DecryptDataKeyRequest(
        target=target_pb(target), sealed_key=sealed_key, context=context
    )


def data_key(
    response: pb.GenerateDataKeyResponse | pb.GenerateDataKeyWithoutPlaintextResponse,
) -> DataKey:
    plaintext = getattr(response, "plaintext_key", b"")
    return DataKey(response.sealed_key, response.key_version, plaintext)


def opened_data_key(response: pb.DecryptDataKeyResponse, sealed_key: bytes) -> DataKey:
    return DataKey(sealed_key, response.key_version, response.plaintext_key)


def compute_mac_request(
    target: Target, value: bytes, context: bytes, key_version: int
) -> pb.ComputeMacRequest:
    return pb.ComputeMacRequest(
        target=target_pb(target), value=value, context=context, key_version=key_version
    )


def verify_mac_request(
    target: Target, value: bytes, mac: bytes, context: bytes
) -> pb.VerifyMacRequest:
    return pb.VerifyMacRequest(target=target_pb(target), value=value, mac=mac, context=context)


def computed_mac(response: pb.ComputeMacResponse) -> Mac:
    return Mac(response.mac, response.key_version)
