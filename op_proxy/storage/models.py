"""Tables. Times are Unix seconds (integers): the same on SQLite and MariaDB, no time zones."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = String(64)
NAME = String(255)
URI = Text


class Base(DeclarativeBase):
    pass


class Client(Base):
    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(NAME, primary_key=True)
    name: Mapped[str] = mapped_column(NAME)
    secret_hash: Mapped[str | None] = mapped_column(NAME)
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    redirect_uris: Mapped[list] = mapped_column(JSON)
    post_logout_redirect_uris: Mapped[list] = mapped_column(JSON)
    jwks: Mapped[dict | None] = mapped_column(JSON)
    require_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    require_pkce: Mapped[bool] = mapped_column(Boolean, default=False)
    allowed_scopes: Mapped[list] = mapped_column(JSON)
    allowed_upstreams: Mapped[list] = mapped_column(JSON)
    subject_type: Mapped[str] = mapped_column(String(16), default="public")
    # The app's own user API (the old gateway's contract); the secret is sent, so it is kept as is.
    user_handler_endpoint: Mapped[str | None] = mapped_column(URI)
    user_handler_secret: Mapped[str | None] = mapped_column(Text)  # X-API-SECRET, encrypted with the data key
    # Front door: "oidc", or the old gateway's "query_token" (?token=<HS256 JWT>) or "php_session".
    mode: Mapped[str] = mapped_column(String(16), default="oidc")
    legacy_key: Mapped[str | None] = mapped_column(Text)  # the HS256 key, encrypted with the data key
    legacy_use_global_key: Mapped[bool] = mapped_column(Boolean, default=False)
    legacy_token_lifetime: Mapped[int] = mapped_column(Integer, default=3600)
    # Shorter lifetimes for this client's tokens; None: the server's [tokens] ones.
    access_token_lifetime: Mapped[int | None] = mapped_column(Integer)
    id_token_lifetime: Mapped[int | None] = mapped_column(Integer)
    refresh_token_lifetime: Mapped[int | None] = mapped_column(Integer)
    legacy_default: Mapped[bool] = mapped_column(Boolean, default=False)  # login.php without client_id
    # "jwt" (RFC 9068, also when None) or "opaque": a random string checked by digest, one signature fewer.
    access_token_format: Mapped[str | None] = mapped_column(String(16))
    php_session: Mapped[dict | None] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # "config": kept in step with the config file at every start; "database": made by CLI or admin.
    source: Mapped[str] = mapped_column(String(16), default="database")
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"


class PendingLogin(Base):
    """An authorization request waiting for the person to sign in (survives restarts)."""

    __tablename__ = "pending_logins"

    id_digest: Mapped[str] = mapped_column(ID, primary_key=True)
    client_id: Mapped[str] = mapped_column(NAME)
    params: Mapped[dict] = mapped_column(JSON)
    browser_digest: Mapped[str] = mapped_column(ID)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)
    # The answer given when the person's password step finished, sealed; kept for a retry (flow.replay).
    outcome: Mapped[str | None] = mapped_column(Text)


class Account(Base):
    """A person as one upstream knows them; ``sub`` is ours, stable and meaningless."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("upstream", "upstream_subject", name="uq_accounts_upstream_subject"),)

    sub: Mapped[str] = mapped_column(ID, primary_key=True)
    upstream: Mapped[str] = mapped_column(String(64))
    upstream_subject: Mapped[str] = mapped_column(NAME)
    profile: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class SsoSession(Base):
    __tablename__ = "sso_sessions"

    cookie_digest: Mapped[str] = mapped_column(ID, primary_key=True)
    sid: Mapped[str] = mapped_column(ID, unique=True)
    sub: Mapped[str] = mapped_column(ID, index=True)
    upstream: Mapped[str] = mapped_column(String(64))
    auth_time: Mapped[int] = mapped_column(BigInteger)
    acr: Mapped[str | None] = mapped_column(NAME)
    amr: Mapped[list] = mapped_column(JSON)
    # What the upstream gave us, for logging out there and refreshing: its ID token (the
    # id_token_hint of its end-session endpoint) and its refresh token, encrypted.
    upstream_id_token: Mapped[str | None] = mapped_column(Text)
    upstream_refresh_token: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger)


class Grant(Base):
    """What one sign-in allowed one client: every code, access and refresh token hangs off it."""

    __tablename__ = "grants"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    client_id: Mapped[str] = mapped_column(NAME, index=True)
    sub: Mapped[str] = mapped_column(ID, index=True)  # the account (ours, internal)
    # What this client calls the person: the account's sub, or a pairwise one (OIDC Core §8.1).
    subject: Mapped[str | None] = mapped_column(ID)
    sid: Mapped[str] = mapped_column(ID, index=True)
    scope: Mapped[str] = mapped_column(Text)
    claims: Mapped[dict | None] = mapped_column(JSON)
    auth_time: Mapped[int] = mapped_column(BigInteger)
    acr: Mapped[str | None] = mapped_column(NAME)
    amr: Mapped[list] = mapped_column(JSON)
    # What the client's user handler answered (its record of the person, with ``role``).
    app_user: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)
    revoked_reason: Mapped[str | None] = mapped_column(String(64))

    @property
    def client_sub(self) -> str:
        return self.subject or self.sub


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"

    code_digest: Mapped[str] = mapped_column(ID, primary_key=True)
    grant_id: Mapped[str] = mapped_column(ID, index=True)
    client_id: Mapped[str] = mapped_column(NAME)
    redirect_uri: Mapped[str] = mapped_column(URI)
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(16))
    nonce: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    consumed_at: Mapped[int | None] = mapped_column(BigInteger)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    token_digest: Mapped[str] = mapped_column(ID, primary_key=True)
    grant_id: Mapped[str] = mapped_column(ID, index=True)
    client_id: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    rotated_at: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)


class AccessToken(Base):
    """A JWT access token's row (keyed on its ``jti``) lets introspection and userinfo see revocation;
    an opaque one's row (keyed on its digest) is all there is of it, so it also keeps its scope."""

    __tablename__ = "access_tokens"

    jti: Mapped[str] = mapped_column(ID, primary_key=True)
    grant_id: Mapped[str] = mapped_column(ID, index=True)
    client_id: Mapped[str] = mapped_column(NAME)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)
    scope: Mapped[str | None] = mapped_column(Text)  # opaque tokens only
    issued_at: Mapped[int | None] = mapped_column(BigInteger)  # opaque tokens only


class Consent(Base):
    __tablename__ = "consents"

    client_id: Mapped[str] = mapped_column(NAME, primary_key=True)
    sub: Mapped[str] = mapped_column(ID, primary_key=True)
    scopes: Mapped[list] = mapped_column(JSON)
    granted_at: Mapped[int] = mapped_column(BigInteger)


class CacheVersion(Base):
    """Bumped by triggers on every change of a cached table (migration 0015): processes that keep the
    table in memory compare it every few seconds."""

    __tablename__ = "cache_versions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class UsedJti(Base):
    """Single-use JWT ids (client assertions), kept until the JWT would have expired anyway."""

    __tablename__ = "used_jtis"

    jti_digest: Mapped[str] = mapped_column(ID, primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


class ClientAuthFailures(Base):
    """Wrong client secrets of one client in the current minute, counted for every process
    (op_proxy/clients/throttle.py). One row per client at most: unknown client_ids are never counted."""

    __tablename__ = "client_auth_failures"

    client_id: Mapped[str] = mapped_column(NAME, primary_key=True)
    window_started_at: Mapped[int] = mapped_column(BigInteger)
    failures: Mapped[int] = mapped_column(Integer)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_event_at", "event", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[int] = mapped_column(BigInteger, index=True)
    event: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    client_id: Mapped[str | None] = mapped_column(NAME, index=True)
    sub: Mapped[str | None] = mapped_column(ID)
    upstream: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict] = mapped_column(JSON)


class UpstreamLogin(Base):
    """A person sent to an upstream: what we expect back (RFC 9700 §4.4 mix-up defence keeps the
    upstream server-side, next to the state). Single use."""

    __tablename__ = "upstream_logins"

    state_digest: Mapped[str] = mapped_column(ID, primary_key=True)
    login_id: Mapped[str] = mapped_column(ID)
    upstream: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str | None] = mapped_column(String(128))
    code_verifier: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    consumed_at: Mapped[int | None] = mapped_column(BigInteger)


class User(Base):
    """The old gateway's ``users`` table (its columns, for the PHP session mode's ``user_info``),
    keyed on the account — (upstream, upstream subject) — never on e-mail."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_sub: Mapped[str] = mapped_column(ID, unique=True)
    user_id: Mapped[str | None] = mapped_column(NAME)
    email: Mapped[str | None] = mapped_column(NAME, index=True)
    name: Mapped[str] = mapped_column(NAME)
    first_name: Mapped[str | None] = mapped_column(NAME)
    last_name: Mapped[str | None] = mapped_column(NAME)
    role: Mapped[str] = mapped_column(String(50), default="subscriber")
    department: Mapped[str | None] = mapped_column(NAME)
    position: Mapped[str | None] = mapped_column(NAME)
    campus: Mapped[str | None] = mapped_column(NAME)
    office_name: Mapped[str | None] = mapped_column(NAME)
    faculty_id: Mapped[str | None] = mapped_column(String(50), index=True)
    department_id: Mapped[str | None] = mapped_column(String(50), index=True)
    campus_id: Mapped[str | None] = mapped_column(String(50), index=True)
    groups: Mapped[str | None] = mapped_column(Text)  # JSON text, as the old gateway stored it
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class UserAppRole(Base):
    """A person's role in one PHP-session app: each app authorises its own people, as in the old
    gateway. An app with no row for the person sees ``users.role``, the person's default."""

    __tablename__ = "user_app_roles"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(ID, primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(50))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Admin(Base):
    """Someone who runs op-proxy from the admin panel: ``admin`` writes, ``viewer`` only reads."""

    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # A password admin's own name; an SSO admin's "sso:<account sub>" (see SSO_PREFIX in admin.auth).
    username: Mapped[str] = mapped_column(NAME, unique=True)
    display_name: Mapped[str | None] = mapped_column(NAME)  # SSO admins: "upstream:username", for people
    password_hash: Mapped[str] = mapped_column(NAME)
    role: Mapped[str] = mapped_column(String(16), default="admin")
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_sign_in_at: Mapped[int | None] = mapped_column(BigInteger)

    @property
    def shown_name(self) -> str:
        return self.display_name or self.username


class AdminSession(Base):
    __tablename__ = "admin_sessions"

    cookie_digest: Mapped[str] = mapped_column(ID, primary_key=True)
    admin_id: Mapped[int] = mapped_column(Integer, index=True)
    csrf_token: Mapped[str] = mapped_column(ID)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
