"""Fixtures shared by every test folder: a real Redis for the session, a test config, the harness."""

from tests.fixtures import Clock, Harness, harness, redis_client, redis_server, settings  # noqa: F401
