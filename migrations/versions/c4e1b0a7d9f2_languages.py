"""languages: a staff login's language; email template edits per language

Revision ID: c4e1b0a7d9f2
Revises: b92adc62b363
Create Date: 2026-12-04 18:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'c4e1b0a7d9f2'
down_revision = 'b92adc62b363'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=True))
    # existing edits were written in English (the only language until now)
    with op.batch_alter_table('email_template', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=False, server_default='en'))
    with op.batch_alter_table('email_template', schema=None) as batch_op:
        batch_op.alter_column('language', server_default=None)
        batch_op.drop_constraint('uq_email_template_key', type_='unique')
        batch_op.create_unique_constraint('uq_email_template_key_language', ['key', 'language'])


def downgrade():
    # keep one edit per template: the English one where there is one
    op.execute("DELETE FROM email_template WHERE language <> 'en' AND key IN "
               "(SELECT key FROM email_template WHERE language = 'en')")
    op.execute("DELETE FROM email_template WHERE id NOT IN (SELECT MIN(id) FROM email_template GROUP BY key)")
    with op.batch_alter_table('email_template', schema=None) as batch_op:
        batch_op.drop_constraint('uq_email_template_key_language', type_='unique')
        batch_op.create_unique_constraint('uq_email_template_key', ['key'])
        batch_op.drop_column('language')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('language')
