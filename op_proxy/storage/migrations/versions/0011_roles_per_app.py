"""a person's role in each PHP-session app

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30

``users.role`` stays: it is the person's default, which every app without a role of its own for
the person sees (so roles set before this migration keep working everywhere until an admin gives
an app its own with ``op-proxy users set-role PERSON ROLE --client APP``).
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('user_app_roles',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=50), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('user_id', 'client_id')
    )
    with op.batch_alter_table('user_app_roles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_app_roles_client_id'), ['client_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('user_app_roles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_app_roles_client_id'))
    op.drop_table('user_app_roles')
