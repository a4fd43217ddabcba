"""SQLite: a covering index for the envelope search (account, status, creator, search text)

Revision ID: 0007
Revises: 0006
"""
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

# PostgreSQL refuses B-tree entries above ~2,700 bytes and search_text is unbounded: SQLite only
# (decision 0008).
INDEX = 'ix_envelopes_search_sqlite'


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.create_index(
            INDEX, 'envelopes', ['account_id', 'status', 'created_by', 'search_text'], unique=False
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.drop_index(INDEX, table_name='envelopes')
