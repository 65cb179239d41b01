"""online payment checkouts and processed notifications

Revision ID: e5f0a1b2c3d4
Revises: a7c1d2e3f405
Create Date: 2026-12-06 03:40:00

"""
from alembic import op
import sqlalchemy as sa

import membership.core.types


revision = 'e5f0a1b2c3d4'
down_revision = 'a7c1d2e3f405'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('checkout',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=40), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('purpose', sa.String(length=10), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.Column('membership_id', sa.Integer(), nullable=True),
    sa.Column('registration_id', sa.Integer(), nullable=True),
    sa.Column('amount_minor', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('session_ref', sa.String(length=255), nullable=True),
    sa.Column('payment_ref', sa.String(length=100), nullable=True),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('save_card', sa.Boolean(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', membership.core.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', membership.core.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('paid_at', membership.core.types.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount_minor > 0', name=op.f('ck_checkout_amount_positive')),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], name=op.f('fk_checkout_member_id_member'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['membership_id'], ['membership.id'], name=op.f('fk_checkout_membership_id_membership'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['payment_id'], ['payment.id'], name=op.f('fk_checkout_payment_id_payment'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['registration_id'], ['event_registration.id'], name=op.f('fk_checkout_registration_id_event_registration'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkout')),
    sa.UniqueConstraint('reference', name=op.f('uq_checkout_reference'))
    )
    with op.batch_alter_table('checkout', schema=None) as batch_op:
        batch_op.create_index('ix_checkout_status_created', ['status', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_checkout_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_checkout_membership_id'), ['membership_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_checkout_registration_id'), ['registration_id'], unique=False)

    op.create_table('processed_notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('event_ref', sa.String(length=255), nullable=False),
    sa.Column('checkout_id', sa.Integer(), nullable=True),
    sa.Column('received_at', membership.core.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['checkout_id'], ['checkout.id'], name=op.f('fk_processed_notification_checkout_id_checkout'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_processed_notification')),
    sa.UniqueConstraint('provider', 'event_ref', name='uq_processed_notification_event')
    )
    with op.batch_alter_table('processed_notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_processed_notification_checkout_id'), ['checkout_id'], unique=False)


def downgrade():
    with op.batch_alter_table('processed_notification', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_processed_notification_checkout_id'))
    op.drop_table('processed_notification')
    with op.batch_alter_table('checkout', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkout_registration_id'))
        batch_op.drop_index(batch_op.f('ix_checkout_membership_id'))
        batch_op.drop_index(batch_op.f('ix_checkout_member_id'))
        batch_op.drop_index('ix_checkout_status_created')
    op.drop_table('checkout')
