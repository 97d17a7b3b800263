"""A small Python client for the ekms gRPC data plane (``ekms.v1.Crypto``).

    from ekms_client import EkmsClient, Target

    with EkmsClient("ekms.internal:50051", token=lambda: fetch_token()) as ekms:
        salary = Target.for_field("employees", "salary")
        sealed = ekms.encrypt(salary, b"85000", context=b"employee-42")
        assert ekms.decrypt(salary, sealed.ciphertext, context=b"employee-42").plaintext == b"85000"

``AsyncEkmsClient`` has the same methods as coroutines (streams as async iterators). Every call
has a default deadline; only UNAVAILABLE is retried (bounded, with exponential backoff and
jitter), never a stream; any other failure raises ``EkmsRpcError`` with ``code`` and ``reason``.
See docs/grpc-client.md.
"""

from ekms_client._aio import AsyncEkmsClient
from ekms_client._errors import EkmsRpcError
from ekms_client._sync import EkmsClient
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

__all__ = [
    "AsyncEkmsClient",
    "DataKey",
    "DecryptItem",
    "Decrypted",
    "EkmsClient",
    "EkmsRpcError",
    "EncryptItem",
    "Encrypted",
    "ItemResult",
    "Mac",
    "RetryPolicy",
    "Rewrapped",
    "Target",
]
