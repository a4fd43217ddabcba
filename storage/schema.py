"""Every table module, imported in one place: the metadata Alembic and the tests compare."""

from __future__ import annotations

from storage import tables
from storage import tables_bot as tables_bot
from storage import tables_delivery as tables_delivery
from storage import tables_scheduler as tables_scheduler

# Feature table modules register themselves on the same metadata when imported here.

metadata = tables.metadata
