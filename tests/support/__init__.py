"""Shared test support: databases, clocks and fakes."""
