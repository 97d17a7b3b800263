"""Outbound adapters for the ``KeyManagementService`` / ``KmsConnector`` ports.

- ``app.infra.kms.aws``: ``AwsKms`` / ``AwsKmsConnector``, AWS KMS through aiobotocore.
- ``app.infra.kms.aws_errors``: botocore / aiohttp errors mapped to the ekms error tree.
- ``app.infra.kms.local``: ``LocalKms`` / ``LocalKmsConnector``, AES-256-GCM under a local root
  key, for development and on-premise use, and ``load_local_root_key``.

Nothing is re-exported here, so using the local KMS never imports aiobotocore.
"""
