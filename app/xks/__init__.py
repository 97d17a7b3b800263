"""The XKS proxy listener: AWS KMS's External Key Store Proxy API v1 over HTTP(S)."""

from app.xks.app import create_xks_app

__all__ = ["create_xks_app"]
