"""The tables as SQLAlchemy Core sees them, named once for the storage operations, the sign-in
operations and housekeeping (the ORM classes in ``models`` define them)."""

from __future__ import annotations

from op_proxy.storage.models import (
    AccessToken,
    Account,
    AdminSession,
    AuditEvent,
    AuthorizationCode,
    ClientAuthFailures,
    Consent,
    Grant,
    PendingLogin,
    RefreshToken,
    SsoSession,
    UpstreamLogin,
    UsedJti,
)

ACCESS_TOKENS = AccessToken.__table__
ACCOUNTS = Account.__table__
ADMIN_SESSIONS = AdminSession.__table__
AUDIT_EVENTS = AuditEvent.__table__
CLIENT_AUTH_FAILURES = ClientAuthFailures.__table__
CODES = AuthorizationCode.__table__
CONSENTS = Consent.__table__
GRANTS = Grant.__table__
PENDING = PendingLogin.__table__
REFRESH_TOKENS = RefreshToken.__table__
SSO_SESSIONS = SsoSession.__table__
UPSTREAM_LOGINS = UpstreamLogin.__table__
USED_JTIS = UsedJti.__table__
