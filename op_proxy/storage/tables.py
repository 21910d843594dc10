"""The tables as SQLAlchemy Core sees them, named once for the storage operations, the sign-in
operations and housekeeping (the ORM classes in ``models`` define them)."""

from __future__ import annotations

from op_proxy.storage import models

ACCESS_TOKENS = models.AccessToken.__table__
ACCOUNTS = models.Account.__table__
ADMIN_SESSIONS = models.AdminSession.__table__
AUDIT_EVENTS = models.AuditEvent.__table__
CLIENT_AUTH_FAILURES = models.ClientAuthFailures.__table__
CODES = models.AuthorizationCode.__table__
CONSENTS = models.Consent.__table__
GRANTS = models.Grant.__table__
PENDING = models.PendingLogin.__table__
REFRESH_TOKENS = models.RefreshToken.__table__
SSO_SESSIONS = models.SsoSession.__table__
UPSTREAM_LOGINS = models.UpstreamLogin.__table__
USED_JTIS = models.UsedJti.__table__
