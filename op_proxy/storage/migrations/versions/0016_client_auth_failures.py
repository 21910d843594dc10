"""wrong client secrets are counted per client, for every process

Revision ID: 0016
Revises: 0012
Create Date: 2026-11-30

Client secrets made by op-proxy are now stored as ``sha256$<hex>`` in ``clients.secret_hash`` (the
column holds either form, so it does not change). The new table counts wrong secrets per client
and minute, so that a client whose secret needs argon2 is throttled across processes.
"""

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'client_auth_failures',
        sa.Column('client_id', sa.String(length=255), nullable=False),
        sa.Column('window_started_at', sa.BigInteger(), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('client_id'),
    )


def downgrade() -> None:
    op.drop_table('client_auth_failures')
