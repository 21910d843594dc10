"""user handler

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_handler_endpoint', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('user_handler_secret', sa.String(length=255), nullable=True))

    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('app_user', sa.JSON(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_column('app_user')

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('user_handler_secret')
        batch_op.drop_column('user_handler_endpoint')

