"""scheduler: reminder settings, mutes, plans, and the once-only rows of nudges, expiries,
renewals and alerts

Revision ID: 0004
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.tables


revision = '0004'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scheduler_marks',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('at', storage.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('value', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('balance_alerts',
    sa.Column('account_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('notification_low', sa.Boolean(), nullable=False),
    sa.Column('credits_low', sa.Boolean(), nullable=False),
    sa.Column('updated_at', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('account_id')
    )
    op.create_table('plan_renewals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('cycle_at', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('next_at', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lapsed', sa.Integer(), nullable=False),
    sa.Column('granted', sa.Integer(), nullable=False),
    sa.Column('granted_notification', sa.Integer(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('created_at', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', storage.tables.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'cycle_at', name='uq_plan_renewals_cycle')
    )
    op.create_table('reminder_settings',
    sa.Column('account_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('offsets', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('quiet_start', sa.Integer(), nullable=True),
    sa.Column('quiet_end', sa.Integer(), nullable=True),
    sa.Column('auto_resend_days', sa.Integer(), nullable=True),
    sa.Column('low_balance_threshold', sa.Integer(), nullable=False),
    sa.Column('nudges_since', storage.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('auto_resend_since', storage.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.Column('updated_at', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('account_id')
    )
    op.create_table('envelope_expiries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('envelope_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('deadline', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('created_at', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', storage.tables.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['envelope_id'], ['envelopes.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('envelope_id', 'deadline', name='uq_envelope_expiries_deadline')
    )
    op.create_table('reminder_auto_resends',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('envelope_id', sa.Integer(), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('queued', sa.Integer(), nullable=False),
    sa.Column('created_at', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['envelope_id'], ['envelopes.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('envelope_id', 'round', name='uq_reminder_auto_resends_round')
    )
    op.create_table('reminder_mutes',
    sa.Column('envelope_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('account_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('muted_by', sa.Integer(), nullable=False),
    sa.Column('muted_at', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['envelope_id'], ['envelopes.id'], ),
    sa.PrimaryKeyConstraint('envelope_id')
    )
    op.create_table('reminder_nudges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('envelope_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('deadline', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('offset_seconds', sa.Integer(), nullable=False),
    sa.Column('due_at', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('claimed_at', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', storage.tables.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['envelope_id'], ['envelopes.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('envelope_id', 'deadline', 'offset_seconds', name='uq_reminder_nudges_slot')
    )
    with op.batch_alter_table('reminder_nudges', schema=None) as batch_op:
        batch_op.create_index('ix_reminder_nudges_account', ['account_id', 'claimed_at'], unique=False)

    op.create_table('reminder_progress',
    sa.Column('envelope_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('account_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('deadline', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('next_check_at', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['envelope_id'], ['envelopes.id'], ),
    sa.PrimaryKeyConstraint('envelope_id')
    )
    with op.batch_alter_table('reminder_progress', schema=None) as batch_op:
        batch_op.create_index('ix_reminder_progress_account', ['account_id'], unique=False)
        batch_op.create_index('ix_reminder_progress_next_check', ['next_check_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('reminder_progress', schema=None) as batch_op:
        batch_op.drop_index('ix_reminder_progress_next_check')
        batch_op.drop_index('ix_reminder_progress_account')

    op.drop_table('reminder_progress')
    with op.batch_alter_table('reminder_nudges', schema=None) as batch_op:
        batch_op.drop_index('ix_reminder_nudges_account')

    op.drop_table('reminder_nudges')
    op.drop_table('reminder_mutes')
    op.drop_table('reminder_auto_resends')
    op.drop_table('envelope_expiries')
    op.drop_table('reminder_settings')
    op.drop_table('plan_renewals')
    op.drop_table('balance_alerts')
    op.drop_table('scheduler_marks')
