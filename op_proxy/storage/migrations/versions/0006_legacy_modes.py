"""legacy modes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_sub', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('email', sa.String(length=255), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('first_name', sa.String(length=255), nullable=True),
    sa.Column('last_name', sa.String(length=255), nullable=True),
    sa.Column('role', sa.String(length=50), nullable=False),
    sa.Column('department', sa.String(length=255), nullable=True),
    sa.Column('position', sa.String(length=255), nullable=True),
    sa.Column('campus', sa.String(length=255), nullable=True),
    sa.Column('office_name', sa.String(length=255), nullable=True),
    sa.Column('faculty_id', sa.String(length=50), nullable=True),
    sa.Column('department_id', sa.String(length=50), nullable=True),
    sa.Column('campus_id', sa.String(length=50), nullable=True),
    sa.Column('groups', sa.Text(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_sub')
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_campus_id'), ['campus_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_users_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_users_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_users_faculty_id'), ['faculty_id'], unique=False)

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mode', sa.String(length=16), nullable=False, server_default='oidc'))
        batch_op.add_column(sa.Column('legacy_key', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('legacy_use_global_key', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('legacy_token_lifetime', sa.Integer(), nullable=False, server_default='3600'))
        batch_op.add_column(sa.Column('legacy_default', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('php_session', sa.JSON(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('php_session')
        batch_op.drop_column('legacy_default')
        batch_op.drop_column('legacy_token_lifetime')
        batch_op.drop_column('legacy_use_global_key')
        batch_op.drop_column('legacy_key')
        batch_op.drop_column('mode')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_faculty_id'))
        batch_op.drop_index(batch_op.f('ix_users_email'))
        batch_op.drop_index(batch_op.f('ix_users_department_id'))
        batch_op.drop_index(batch_op.f('ix_users_campus_id'))

    op.drop_table('users')
