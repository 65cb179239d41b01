"""auto-renewal charges (one row per saved card and term)

Revision ID: b3d5f7a9c1e2
Revises: e5f0a1b2c3d4
Create Date: 2026-12-06 03:30:00

"""
from alembic import op
import sqlalchemy as sa

import membership.core.types


revision = 'b3d5f7a9c1e2'
down_revision = 'e5f0a1b2c3d4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('auto_renewal_charge',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('card_id', sa.Integer(), nullable=False),
    sa.Column('term_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('amount_minor', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_attempt_on', sa.Date(), nullable=True),
    sa.Column('claimed_at', membership.core.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('failure_message', sa.String(length=500), nullable=True),
    sa.Column('payment_ref', sa.String(length=100), nullable=True),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('new_term_id', sa.Integer(), nullable=True),
    sa.Column('created_at', membership.core.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', membership.core.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['saved_card.id'], name=op.f('fk_auto_renewal_charge_card_id_saved_card'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], name=op.f('fk_auto_renewal_charge_member_id_member'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['new_term_id'], ['membership.id'], name=op.f('fk_auto_renewal_charge_new_term_id_membership'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['payment_id'], ['payment.id'], name=op.f('fk_auto_renewal_charge_payment_id_payment'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['term_id'], ['membership.id'], name=op.f('fk_auto_renewal_charge_term_id_membership'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auto_renewal_charge')),
    sa.UniqueConstraint('card_id', 'term_id', name='uq_auto_renewal_charge_card_term')
    )
    with op.batch_alter_table('auto_renewal_charge', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auto_renewal_charge_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_auto_renewal_charge_term_id'), ['term_id'], unique=False)


def downgrade():
    with op.batch_alter_table('auto_renewal_charge', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auto_renewal_charge_term_id'))
        batch_op.drop_index(batch_op.f('ix_auto_renewal_charge_member_id'))
    op.drop_table('auto_renewal_charge')
