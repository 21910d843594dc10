"""upstream tokens

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sso_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('upstream_id_token', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('upstream_refresh_token', sa.Text(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('sso_sessions', schema=None) as batch_op:
        batch_op.drop_column('upstream_refresh_token')
        batch_op.drop_column('upstream_id_token')

