"""The pure core of ekms: key chain entities, access policies, ciphertext format.

Nothing here does I/O or imports a framework (fastapi, grpc, sqlalchemy, aiobotocore,
apscheduler); ``tests/unit/test_architecture.py`` checks that.
"""
