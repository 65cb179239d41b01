"""saved cards (auto-renewal)

Revision ID: a7c1d2e3f405
Revises: dec3cc0afcea
Create Date: 2026-12-04 22:45:00

"""
from alembic import op
import sqlalchemy as sa

import membership.core.types


revision = 'a7c1d2e3f405'
down_revision = 'dec3cc0afcea'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('saved_card',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('customer_ref', sa.String(length=100), nullable=False),
    sa.Column('payment_method_ref', sa.String(length=100), nullable=False),
    sa.Column('label', sa.String(length=60), nullable=True),
    sa.Column('created_at', membership.core.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', membership.core.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], name=op.f('fk_saved_card_member_id_member'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saved_card'))
    )
    with op.batch_alter_table('saved_card', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_saved_card_member_id'), ['member_id'], unique=False)


def downgrade():
    with op.batch_alter_table('saved_card', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_saved_card_member_id'))
    op.drop_table('saved_card')
