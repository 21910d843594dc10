"""The tables as SQLAlchemy Core sees them, named once for the storage operations, the sign-in
operations and housekeeping (the ORM classes in ``models`` define them)."""

from __future__ import annotations

from op_proxy.storage import models

# A person and their browser sign-in.
ACCOUNTS, SSO_SESSIONS, CONSENTS = models.Account.__table__, models.SsoSession.__table__, models.Consent.__table__
# A sign-in on its way: the request kept for the browser, and the person sent to an upstream.
PENDING, UPSTREAM_LOGINS = models.PendingLogin.__table__, models.UpstreamLogin.__table__
# What an application is given: a grant, its code and its tokens; how its client authenticates
# (assertions seen once, wrong secrets counted).
GRANTS, CODES = models.Grant.__table__, models.AuthorizationCode.__table__
ACCESS_TOKENS, REFRESH_TOKENS = models.AccessToken.__table__, models.RefreshToken.__table__
USED_JTIS, CLIENT_AUTH_FAILURES = models.UsedJti.__table__, models.ClientAuthFailures.__table__
# The panel's sessions and the audit log.
ADMIN_SESSIONS, AUDIT_EVENTS = models.AdminSession.__table__, models.AuditEvent.__table__
