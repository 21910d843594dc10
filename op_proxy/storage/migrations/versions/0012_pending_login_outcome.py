"""a finished password step keeps its answer (sealed) so that the same browser may ask again

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pending_logins', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outcome', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pending_logins', schema=None) as batch_op:
        batch_op.drop_column('outcome')
