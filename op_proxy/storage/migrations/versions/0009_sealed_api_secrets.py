"""user handler API secrets sealed with the data key

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29

The column now holds a Fernet token (longer than the secret). Values written before this revision
are plaintext; op-proxy seals them at its next start (``seal_plaintext_api_secrets``), since the
data key lives in the keys directory, out of the migration's reach.
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.alter_column('user_handler_secret', existing_type=sa.String(length=255), type_=sa.Text(),
                              existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.alter_column('user_handler_secret', existing_type=sa.Text(), type_=sa.String(length=255),
                              existing_nullable=True)
