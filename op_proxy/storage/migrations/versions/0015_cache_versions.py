"""a version counter per cached table, bumped by the database itself on every change; a client's
access token format

Revision ID: 0015
Revises: 0016
Create Date: 2026-11-30

Every op-proxy process keeps the clients in memory and reads ``cache_versions`` at most every few
seconds; triggers bump the counter on any insert, update or delete of a client, whoever makes it
(the admin panel, the CLI, another process, an operator's SQL), so no writer can forget to.

``clients.access_token_format``: "jwt" (RFC 9068, the default when NULL) or "opaque"; an opaque
access token's row is keyed on its digest and carries what introspection tells (scope, issued_at).
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0016'
branch_labels = None
depends_on = None

CACHED_TABLES = ("clients",)


def upgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('access_token_format', sa.String(length=16), nullable=True))
    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('issued_at', sa.BigInteger(), nullable=True))
    op.create_table(
        'cache_versions',
        sa.Column('name', sa.String(length=64), primary_key=True),
        sa.Column('version', sa.BigInteger(), nullable=False),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in CACHED_TABLES:
        op.execute(sa.text("INSERT INTO cache_versions (name, version) VALUES (:name, 1)").bindparams(name=table))
        for action in ("INSERT", "UPDATE", "DELETE"):
            bump = f"UPDATE cache_versions SET version = version + 1 WHERE name = '{table}'"
            body = f"BEGIN {bump}; END" if sqlite else bump
            op.execute(f"CREATE TRIGGER {table}_{action.lower()}_bumps_cache_version AFTER {action} ON {table} "
                       f"FOR EACH ROW {body}")


def downgrade() -> None:
    for table in CACHED_TABLES:
        for action in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_{action}_bumps_cache_version")
    op.drop_table('cache_versions')
    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.drop_column('issued_at')
        batch_op.drop_column('scope')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('access_token_format')
