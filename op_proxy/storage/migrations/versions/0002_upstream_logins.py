"""upstream logins

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('upstream_logins',
    sa.Column('state_digest', sa.String(length=64), nullable=False),
    sa.Column('login_id', sa.String(length=64), nullable=False),
    sa.Column('upstream', sa.String(length=64), nullable=False),
    sa.Column('nonce', sa.String(length=128), nullable=True),
    sa.Column('code_verifier', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('consumed_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('state_digest')
    )
    with op.batch_alter_table('upstream_logins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_upstream_logins_expires_at'), ['expires_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('upstream_logins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_upstream_logins_expires_at'))

    op.drop_table('upstream_logins')
