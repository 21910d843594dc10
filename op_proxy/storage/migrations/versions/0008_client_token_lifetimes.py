"""per-client token lifetimes

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

COLUMNS = ('access_token_lifetime', 'id_token_lifetime', 'refresh_token_lifetime')


def upgrade() -> None:
    # NULL: the server's [tokens] lifetime applies.
    with op.batch_alter_table('clients', schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
