"""Adapters: the technology behind the ports (KMS clients, the database, token verification)."""
