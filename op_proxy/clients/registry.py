"""Clients in the database. Those in the config file are written there at every start."""

from __future__ import annotations

import time
from dataclasses import asdict

from cryptography.fernet import InvalidToken
from sqlalchemy import delete, select, update

from op_proxy.clients.validation import validate_client_fields
from op_proxy.config import ClientSettings
from op_proxy.security import decrypt, encrypt, random_token, seal, secret_digest
from op_proxy.storage.models import AccessToken, Client, Consent, Grant, RefreshToken, UserAppRole

EDITABLE_FIELDS = (
    "name", "redirect_uris", "post_logout_redirect_uris", "token_endpoint_auth_method", "jwks",
    "require_consent", "require_pkce", "allowed_scopes", "allowed_upstreams", "subject_type",
    "user_handler_endpoint", "user_handler_secret",
)


async def find_client(db, client_id: str | None) -> Client | None:
    """An enabled client, kept in memory by each process (a change shows within
    ``storage.caches.CHECK_EVERY`` seconds elsewhere, at once in the process that made it)."""
    from op_proxy.storage.operations import get_client

    return await get_client(db, client_id)


async def list_clients(db) -> list[Client]:
    async with db.session() as session:
        return list((await session.scalars(select(Client).order_by(Client.client_id))).all())


async def sync_config_clients(db, clients: tuple[ClientSettings, ...], data_key: bytes) -> None:
    """Make the database say what the config file says; config clients dropped from it are disabled."""
    now = int(time.time())
    wanted = {c.client_id: c for c in clients}
    async with db.transaction() as session:
        existing = {c.client_id: c for c in (await session.scalars(select(Client))).all()}
        for client_id, settings in wanted.items():
            row = existing.get(client_id) or Client(client_id=client_id, created_at=now)
            fields = asdict(settings)
            row.secret_hash = fields.pop("client_secret_hash")
            legacy_key = fields.pop("legacy_key")
            row.legacy_key = seal(data_key, legacy_key)
            api_secret = fields.pop("user_handler_secret")
            row.user_handler_secret = seal(data_key, api_secret)
            for name, value in fields.items():
                if name == "client_id":
                    continue
                setattr(row, name, list(value) if isinstance(value, tuple) else value)
            row.source, row.enabled, row.updated_at = "config", True, now
            session.add(row)
        for client_id, row in existing.items():
            if row.source == "config" and client_id not in wanted:
                row.enabled, row.updated_at = False, now


def is_sealed(data_key: bytes, value: str) -> bool:
    try:
        decrypt(data_key, value)
    except InvalidToken:
        return False
    return True


async def seal_plaintext_api_secrets(db, data_key: bytes) -> int:
    """API secrets stored before they were encrypted (migration 0009), encrypted now; how many."""
    sealed = 0
    async with db.transaction() as session:
        for client in (await session.scalars(select(Client).where(Client.user_handler_secret.is_not(None)))).all():
            if not is_sealed(data_key, client.user_handler_secret):
                client.user_handler_secret = encrypt(data_key, client.user_handler_secret)
                sealed += 1
    return sealed


def new_client_secret() -> str:
    return random_token(32)  # 256 bits


def stored_client_secret(secret: str) -> str:
    """What the database keeps of a secret made by ``new_client_secret``: its SHA-256 digest
    (``sha256$<hex>``), checked in a microsecond. Never for a secret a person chose."""
    return secret_digest(secret)


async def create_client(db, fields: dict, data_key: bytes | None = None, limits=None) -> tuple[Client, str | None]:
    """Returns the client and its secret in clear, which is shown once and never stored. A
    query_token client gets its HS256 key instead (stored encrypted: op-proxy signs with it).
    ``limits``: the server's [tokens] settings, which the client's own lifetimes may not exceed."""
    legacy = fields.get("mode", "oidc") != "oidc"
    fields = {"token_endpoint_auth_method": "client_secret_basic", **fields}
    if legacy:
        fields["token_endpoint_auth_method"] = "none"  # a legacy app never calls the token endpoint
    secret = None if fields["token_endpoint_auth_method"] in ("none", "private_key_jwt") else new_client_secret()
    fields["client_secret_hash"] = stored_client_secret(secret) if secret else None
    validate_client_fields(fields, limits)
    legacy_key = None
    if fields.get("mode") == "query_token" and not fields.get("legacy_use_global_key"):
        secret = legacy_key = new_client_secret()
    now = int(time.time())
    client = Client(
        client_id=fields["client_id"], name=fields.get("name") or fields["client_id"],
        secret_hash=fields["client_secret_hash"],
        token_endpoint_auth_method=fields["token_endpoint_auth_method"],
        redirect_uris=list(fields["redirect_uris"]),
        post_logout_redirect_uris=list(fields.get("post_logout_redirect_uris", ())),
        jwks=fields.get("jwks"), require_consent=fields.get("require_consent", False),
        require_pkce=fields.get("require_pkce", False),
        allowed_scopes=list(fields.get("allowed_scopes", ())),
        allowed_upstreams=list(fields.get("allowed_upstreams", ())),
        subject_type=fields.get("subject_type", "public"), enabled=True, source="database",
        mode=fields.get("mode", "oidc"), legacy_key=seal(data_key, legacy_key),
        legacy_use_global_key=fields.get("legacy_use_global_key", False),
        legacy_token_lifetime=fields.get("legacy_token_lifetime", 3600), legacy_default=False,
        php_session=fields.get("php_session"),
        user_handler_endpoint=fields.get("user_handler_endpoint"),
        user_handler_secret=seal(data_key, fields.get("user_handler_secret")),
        access_token_lifetime=fields.get("access_token_lifetime"), id_token_lifetime=fields.get("id_token_lifetime"),
        refresh_token_lifetime=fields.get("refresh_token_lifetime"),
        access_token_format=fields.get("access_token_format", "jwt"),
        created_at=now, updated_at=now,
    )
    async with db.transaction() as session:
        if await session.get(Client, client.client_id) is not None:
            raise ClientExists(client.client_id)
        session.add(client)
    return client, secret


class NoSuchSecret(ValueError):
    """The client has no secret of the kind asked for."""


class ChangedSinceRead(ValueError):
    """The client changed after the caller read it (another admin, or the same form sent twice)."""


# The secrets a client may hold, and why a client may not hold one.
SECRET_KINDS = {
    "secret": "does not authenticate with a secret",  # client_secret_basic/_post, kept as a digest
    "legacy-key": "is not in query_token mode",  # the HS256 key of ?token=, sealed: op-proxy signs with it
    "api-secret": "has no user handler",  # what op-proxy sends its user handler, sealed
}


def _holds(client: Client, kind: str) -> bool:
    if kind == "secret":
        return client.token_endpoint_auth_method in ("client_secret_basic", "client_secret_post")
    if kind == "legacy-key":
        return client.mode == "query_token"
    return kind == "api-secret" and bool(client.user_handler_endpoint)


async def rotate_secret(db, client_id: str, kind: str, data_key: bytes | None = None, *,
                        version: str | None = None) -> str:
    """A new secret of ``kind`` (see ``SECRET_KINDS``) for a client registered in the database,
    returned in clear to be shown once; the old one stops working now. ``version``: the client's
    ``updated_at`` as the caller read it, when replacing a secret someone has just copied must not
    happen twice. LookupError: no such client; ValueError: defined in the config file, changed since
    read (``ChangedSinceRead``) or holding no such secret (``NoSuchSecret``)."""
    secret = random_token(24) if kind == "api-secret" else new_client_secret()
    async with db.transaction() as session:
        client = await session.get(Client, client_id)
        if client is None:
            raise LookupError(client_id)
        if client.source == "config":
            noun = "key" if kind == "legacy-key" else "secret"
            raise ValueError(f"client {client_id} is defined in the config file; change its {noun} there")
        if version is not None and version != str(client.updated_at):
            raise ChangedSinceRead(client_id)
        if not _holds(client, kind):
            raise NoSuchSecret(f"client {client_id} {SECRET_KINDS.get(kind, 'has no such secret')}")
        if kind == "secret":
            client.secret_hash = stored_client_secret(secret)
        elif kind == "legacy-key":
            client.legacy_key, client.legacy_use_global_key = seal(data_key, secret), False
        else:
            client.user_handler_secret = seal(data_key, secret)
        client.updated_at = max(int(time.time()), client.updated_at + 1)  # every rotation a new version
    return secret


async def revoke_client_grants(session, client_id: str, reason: str, *, forget_consents: bool = False) -> None:
    """End everything a client was ever given: its grants, access and refresh tokens (RFC 9700 §4.14),
    and, when it is deleted, the consents people gave it and the roles it gave people (an app
    registered again under the same client_id starts with neither)."""
    now = int(time.time())
    await session.execute(update(Grant).where(Grant.client_id == client_id, Grant.revoked_at.is_(None))
                          .values(revoked_at=now, revoked_reason=reason))
    await session.execute(update(AccessToken).where(AccessToken.client_id == client_id,
                                                    AccessToken.revoked_at.is_(None)).values(revoked_at=now))
    await session.execute(update(RefreshToken).where(RefreshToken.client_id == client_id,
                                                     RefreshToken.revoked_at.is_(None)).values(revoked_at=now))
    if forget_consents:
        await session.execute(delete(Consent).where(Consent.client_id == client_id))
        await session.execute(delete(UserAppRole).where(UserAppRole.client_id == client_id))


async def remove_client(db, client_id: str) -> None:
    async with db.transaction() as session:
        client = await session.get(Client, client_id)
        if client is None:
            raise LookupError(client_id)
        if client.source == "config":
            raise ValueError(f"client {client_id} is defined in the config file; remove it there")
        await session.delete(client)
        await revoke_client_grants(session, client_id, "client_deleted", forget_consents=True)


class ClientExists(ValueError):
    pass
