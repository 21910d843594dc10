"""Audit events: one row per sign-in, token issuance, refusal and admin action.

``detail`` must never hold a secret, a token or a national ID: callers pass only ids and reasons. What a
person typed (an admin sign-in name, say) may still be a national ID, so detail is masked before it is
stored or logged.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import insert

from op_proxy.logs import current_request_id
from op_proxy.masking import loggable, mask_ids
from op_proxy.operations import count_event
from op_proxy.storage.models import AuditEvent

log = logging.getLogger("op_proxy.audit")
INSERT = insert(AuditEvent.__table__)


def entry(event: str, *, outcome: str = "success", client_id: str | None = None, sub: str | None = None,
          upstream: str | None = None, ip: str | None = None, **detail) -> dict:
    """An audit row's values, for a caller that writes it in its own transaction; ``announce`` it after."""
    detail = mask_ids(detail)
    if request_id := current_request_id():
        detail.setdefault("request_id", request_id)  # the reference the person's page shows
    return {"at": int(time.time()), "event": event, "outcome": outcome, "client_id": client_id, "sub": sub,
            "upstream": upstream, "ip": ip, "detail": detail}


def announce(values: dict) -> None:
    """The metrics counter and the log line of an audit row that was written."""
    count_event(values["event"], values["outcome"], values["upstream"])
    fields = {"event": values["event"], "outcome": values["outcome"], "client": values["client_id"],
              "upstream": values["upstream"], "sub": values["sub"],
              **{key: value for key, value in values["detail"].items() if key != "request_id"}}  # the line has its own
    log.info("audit %s", " ".join(f"{key}={loggable(value)}" for key, value in fields.items()),
             extra={"fields": fields})


async def record(db, event: str, *, outcome: str = "success", client_id: str | None = None,
                 sub: str | None = None, upstream: str | None = None, ip: str | None = None,
                 **detail) -> None:
    values = entry(event, outcome=outcome, client_id=client_id, sub=sub, upstream=upstream, ip=ip, **detail)

    def operation(connection):
        with db.writing(connection):
            connection.execute(INSERT, values)

    await db.run(operation)
    announce(values)
