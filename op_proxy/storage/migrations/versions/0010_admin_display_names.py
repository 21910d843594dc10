"""admins signed in through op-proxy are keyed on their account, named for display

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29

An SSO admin's username becomes ``sso:<account sub>`` (stable per upstream and upstream subject);
``display_name`` holds the ``upstream:username`` people read. Rows made before, named after a
display claim two people could share, are dropped with their sessions: those admins sign in again.
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('admins', schema=None) as batch_op:
        batch_op.add_column(sa.Column('display_name', sa.String(length=255), nullable=True))
    op.execute("DELETE FROM admin_sessions WHERE admin_id IN "
               "(SELECT id FROM admins WHERE password_hash = '!sso' AND username NOT LIKE 'sso:%')")
    op.execute("DELETE FROM admins WHERE password_hash = '!sso' AND username NOT LIKE 'sso:%'")


def downgrade() -> None:
    with op.batch_alter_table('admins', schema=None) as batch_op:
        batch_op.drop_column('display_name')
