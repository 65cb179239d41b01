"""churn outcomes given by the history import (issue 10)

Revision ID: c4e1a9d27f10
Revises: c4e1b0a7d9f2
Create Date: 2026-12-04 18:50:00

"""
from alembic import op
import sqlalchemy as sa

import membership.core.types


# revision identifiers, used by Alembic.
revision = 'c4e1a9d27f10'
down_revision = 'c4e1b0a7d9f2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('churn_outcome',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('churned', sa.Boolean(), nullable=False),
    sa.Column('created_at', membership.core.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], name=op.f('fk_churn_outcome_member_id_member'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_churn_outcome')),
    sa.UniqueConstraint('member_id', 'as_of', name='uq_churn_outcome_member_day')
    )
    with op.batch_alter_table('churn_outcome', schema=None) as batch_op:
        batch_op.create_index('ix_churn_outcome_as_of', ['as_of'], unique=False)


def downgrade():
    with op.batch_alter_table('churn_outcome', schema=None) as batch_op:
        batch_op.drop_index('ix_churn_outcome_as_of')
    op.drop_table('churn_outcome')
