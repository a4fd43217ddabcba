"""Every table module, imported in one place: the metadata Alembic and the tests compare."""

from __future__ import annotations

from storage import tables

# Feature table modules register themselves on the same metadata when imported here.

metadata = tables.metadata
