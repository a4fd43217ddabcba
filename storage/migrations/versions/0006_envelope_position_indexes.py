"""documents and signers indexed by (envelope_id, position): read in that order, no sort

Revision ID: 0006
Revises: 0005
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('documents', 'signers'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(
                f'ix_{table}_envelope_position', ['envelope_id', 'position'], unique=False
            )
            batch_op.drop_index(f'ix_{table}_envelope_id')


def downgrade() -> None:
    for table in ('documents', 'signers'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f'ix_{table}_envelope_id', ['envelope_id'], unique=False)
            batch_op.drop_index(f'ix_{table}_envelope_position')
