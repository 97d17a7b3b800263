"""Shared test wiring. Fixture plugins live in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.kms",
    "tests.fixtures.kms_gate",
    "tests.fixtures.pkcs11",
    "tests.fixtures.kmip",
]
