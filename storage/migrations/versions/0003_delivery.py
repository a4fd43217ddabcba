"""delivery: Twilio status callbacks as received, owner notices of failed sends

Revision ID: 0003
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.tables


revision = '0003'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('delivery_callbacks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_sid', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('message_status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('error_code', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('destination', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('notification_id', sa.Integer(), nullable=True),
    sa.Column('received_at', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('applied_at', storage.tables.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_sid', 'message_status', name='uq_delivery_callbacks_sid_status')
    )
    with op.batch_alter_table('delivery_callbacks', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_callbacks_unapplied', ['applied_at', 'received_at'], unique=False)

    op.create_table('delivery_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notification_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('refund_due', sa.Boolean(), nullable=False),
    sa.Column('created_at', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', storage.tables.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['notification_id'], ['notifications.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('notification_id')
    )
    with op.batch_alter_table('delivery_notices', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_notices_pending', ['sent_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('delivery_notices', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_notices_pending')

    op.drop_table('delivery_notices')
    with op.batch_alter_table('delivery_callbacks', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_callbacks_unapplied')

    op.drop_table('delivery_callbacks')
