"""Fixtures of the end-to-end tests: the real SMTP server of the delivery kit."""

from tests.support.delivery import smtp as smtp  # re-exported: a fixture for these tests
