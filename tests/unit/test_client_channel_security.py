"""Finding 10: the Python client attached bearer tokens to plaintext channels, wherever they
went. Now a token on a plaintext channel to a host beyond loopback is refused at construction
unless the caller says ``insecure=True``. No call is made: channels connect lazily."""

from __future__ import annotations

import grpc
import pytest
from ekms_client import AsyncEkmsClient, EkmsClient
from ekms_client._common import target_hosts

REMOTE = ["ekms.example:50051", "10.0.0.7:50051", "[2001:db8::1]:50051", "dns:///ekms.example:443"]
LOCAL = ["127.0.0.1:50051", "localhost:50051", "[::1]:50051", "unix:///run/ekms.sock"]


@pytest.mark.parametrize("address", REMOTE)
def test_a_token_over_plaintext_to_a_remote_host_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="plaintext channel") as err:
        EkmsClient(address, token="a-token")
    assert "insecure=True" in str(err.value) and "ssl_channel_credentials" in str(err.value)
    assert "a-token" not in str(err.value)


@pytest.mark.parametrize("address", REMOTE)
async def test_the_async_client_refuses_it_too(address: str) -> None:
    with pytest.raises(ValueError, match="plaintext channel"):
        AsyncEkmsClient(address, token=lambda: "a-token")


@pytest.mark.parametrize("address", REMOTE)
async def test_insecure_true_or_tls_credentials_allow_it(address: str) -> None:
    EkmsClient(address, token="t", insecure=True).close()
    EkmsClient(address, token="t", credentials=grpc.ssl_channel_credentials()).close()
    await AsyncEkmsClient(address, token="t", insecure=True).close()


@pytest.mark.parametrize("address", LOCAL)
def test_loopback_and_unix_sockets_need_no_flag(address: str) -> None:
    EkmsClient(address, token="t").close()


def test_without_a_token_any_channel_is_allowed() -> None:
    EkmsClient("ekms.example:50051").close()


@pytest.mark.parametrize(
    ("address", "hosts"),
    [
        ("ekms.example:50051", ["ekms.example"]),
        ("ekms.example", ["ekms.example"]),
        ("[::1]:50051", ["::1"]),
        ("::1", ["::1"]),
        ("dns:///localhost:50051", ["localhost"]),
        ("dns://8.8.8.8/ekms.example:50051", ["ekms.example"]),
        ("ipv4:127.0.0.1:1,10.0.0.2:2", ["127.0.0.1", "10.0.0.2"]),
        ("ipv6:[::1]:1", ["::1"]),
        ("unix:/run/ekms.sock", []),
    ],
)
def test_target_hosts_reads_every_grpc_target_form(address: str, hosts: list[str]) -> None:
    assert target_hosts(address) == hosts


def test_one_remote_address_in_a_list_is_enough_to_refuse() -> None:
    with pytest.raises(ValueError, match="plaintext channel"):
        EkmsClient("ipv4:127.0.0.1:1,10.0.0.2:2", token="t")
