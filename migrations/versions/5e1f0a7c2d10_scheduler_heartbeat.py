"""scheduler heartbeat (for /healthz)

Revision ID: 5e1f0a7c2d10
Revises: 2732318a2176
Create Date: 2026-12-04 18:50:00

"""
from alembic import op
import sqlalchemy as sa

import membership.core.types


# revision identifiers, used by Alembic.
revision = '5e1f0a7c2d10'
down_revision = '2732318a2176'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'scheduler_heartbeat',
        sa.Column('holder', sa.String(length=100), nullable=False),
        sa.Column('host', sa.String(length=100), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('started_at', membership.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('beat_at', membership.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('holder', name=op.f('pk_scheduler_heartbeat')),
    )
    with op.batch_alter_table('scheduler_heartbeat', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scheduler_heartbeat_beat_at'), ['beat_at'], unique=False)


def downgrade():
    with op.batch_alter_table('scheduler_heartbeat', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scheduler_heartbeat_beat_at'))
    op.drop_table('scheduler_heartbeat')
