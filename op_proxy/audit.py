"""Audit events: one row per sign-in, token issuance, refusal and admin action.

``detail`` must never hold a secret, a token or a national ID: callers pass only ids and reasons. What a
person typed (an admin sign-in name, say) may still be a national ID, so detail is masked before it is
stored or logged.
"""

from __future__ import annotations

import logging
import time

from op_proxy.masking import loggable, mask_ids
from op_proxy.operations import count_event
from op_proxy.storage.models import AuditEvent

log = logging.getLogger("op_proxy.audit")


async def record(db, event: str, *, outcome: str = "success", client_id: str | None = None,
                 sub: str | None = None, upstream: str | None = None, ip: str | None = None,
                 **detail) -> None:
    detail = mask_ids(detail)
    count_event(event, outcome, upstream)
    async with db.transaction() as session:
        session.add(AuditEvent(at=int(time.time()), event=event, outcome=outcome, client_id=client_id,
                               sub=sub, upstream=upstream, ip=ip, detail=detail))
    fields = {"event": event, "outcome": outcome, "client": client_id, "upstream": upstream, "sub": sub, **detail}
    log.info("audit %s", " ".join(f"{key}={loggable(value)}" for key, value in fields.items()))
