"""The dashboard's figures (sign-ins over the last 24 hours, active SSO sessions) and their live stream.

``figures`` is what ``/admin/dashboard.json`` answers; ``event_stream`` is the server-sent-events body
of ``/admin/dashboard/events``: the same JSON each time it changes, a comment now and then to keep
proxies from closing an idle connection, and nothing more once the admin's session has ended.

Both figures survive a purge (``op_proxy.storage.housekeeping``): sign-ins are counted from audit
events, which are kept for at least a day (``[audit] retention_days`` ≥ 1), and only sessions that
have ended or expired are ever deleted, never one counted here as active.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select

from op_proxy import i18n
from op_proxy.i18n import N_
from op_proxy.storage.models import AdminSession, AuditEvent, Client, SsoSession

WINDOW = 24 * 3600
HOURS = 24
POLL_SECONDS = 2.0
KEEP_ALIVE_SECONDS = 15.0
# Sign-ins the panel itself starts, under a client_id no application has: named for people.
PANEL_CLIENTS = {"(admin panel)": N_("(admin panel)"), "(admin test)": N_("(admin test)")}


def _tally(rows) -> dict:
    """{key: {"success": n, "failure": m}} from (key, successes, failures) rows."""
    return {key: {"success": int(ok or 0), "failure": int(failed or 0)} for key, ok, failed in rows}


async def figures(svc, now: int | None = None, locale: str = "th") -> dict:
    """The dashboard's numbers; applications and identity providers named as the admin reads them."""
    now = int(time.time()) if now is None else now
    since = now - WINDOW
    # Whole hours of the panel's time zone (the time the pages show), the current one last.
    zone = ZoneInfo(svc.settings.admin.timezone)
    this_hour = int(datetime.fromtimestamp(now, zone).replace(minute=0, second=0, microsecond=0).timestamp())
    first_hour = this_hour - (HOURS - 1) * 3600
    sign_ins = (AuditEvent.event == "sign_in", AuditEvent.at > since)
    successes = func.sum(case((AuditEvent.outcome == "success", 1), else_=0))
    failures = func.sum(case((AuditEvent.outcome == "failure", 1), else_=0))
    hour = ((AuditEvent.at - first_hour) // 3600).label("hour")
    async with svc.db.session() as session:
        per_hour = (await session.execute(
            select(hour, successes, failures).where(*sign_ins).group_by(hour))).all()
        per_client = (await session.execute(
            select(AuditEvent.client_id, successes, failures).where(*sign_ins).group_by(AuditEvent.client_id))).all()
        per_upstream = (await session.execute(
            select(AuditEvent.upstream, successes, failures).where(*sign_ins).group_by(AuditEvent.upstream))).all()
        names = dict((await session.execute(select(Client.client_id, Client.name))).all())
        # The panel's own failed sign-ins, counted as the audit log lists them (admin_sign_in rows).
        admin_failures = await session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.event == "admin_sign_in", AuditEvent.outcome == "failure", AuditEvent.at > since))
        active = await session.scalar(select(func.count()).select_from(SsoSession).where(
            SsoSession.ended_at.is_(None), SsoSession.expires_at > now))

    hours = [{"start": first_hour + index * 3600, "success": 0, "failure": 0} for index in range(HOURS)]
    for index, counts in _tally(per_hour).items():
        # The 24 hours start on the hour, so the first bar also holds the minutes just before it.
        bucket = hours[min(max(int(index), 0), HOURS - 1)]
        bucket["success"] += counts["success"]
        bucket["failure"] += counts["failure"]
    for bucket in hours:
        bucket["label"] = f"{datetime.fromtimestamp(bucket['start'], zone):%H:%M}"

    def ranked(tally: dict, key: str, label) -> list[dict]:
        found = [{key: name, "name": label(name), **counts} for name, counts in tally.items()]
        return sorted(found, key=lambda item: (-(item["success"] + item["failure"]), item[key] or ""))

    i18n.set_locale(locale)
    clients = ranked(_tally(per_client), "client_id", lambda client_id: names.get(client_id) or (
        i18n.gettext(PANEL_CLIENTS[client_id]) if client_id in PANEL_CLIENTS else client_id))
    upstreams = ranked(_tally(per_upstream), "upstream", lambda name: upstream_label(svc, name, locale))
    succeeded = sum(bucket["success"] for bucket in hours)
    failed = sum(bucket["failure"] for bucket in hours)
    attempts = succeeded + failed
    return {
        "generated_at": now,
        "signins_24h": succeeded,
        "failures_24h": failed,
        "attempts_24h": attempts,
        "failure_rate": round(failed / attempts, 4) if attempts else None,
        "admin_failures_24h": int(admin_failures or 0),
        "active_sessions": int(active or 0),
        "hours": hours,
        "clients": clients,
        "upstreams": upstreams,
    }


def changed(previous: dict | None, current: dict) -> bool:
    """Whether anything but the time of the reading differs."""
    if previous is None:
        return True
    return {k: v for k, v in previous.items() if k != "generated_at"} != \
        {k: v for k, v in current.items() if k != "generated_at"}


async def session_alive(svc, cookie_digest: str) -> bool:
    async with svc.db.session() as session:
        row = await session.get(AdminSession, cookie_digest)
    return row is not None and row.expires_at > time.time()


def upstream_label(svc, name: str | None, locale: str) -> str | None:
    connector = svc.connectors.get(name) if name else None
    return (connector.display_name.get(locale) or name) if connector else name


async def event_stream(svc, cookie_digest: str, *, locale: str = "th", poll: float = POLL_SECONDS,
                       keep_alive: float = KEEP_ALIVE_SECONDS):
    """Server-sent events. Ends when the client goes away (Quart cancels the generator) or the
    admin's session ends (signed out elsewhere, expired)."""
    yield b"retry: 5000\n\n"
    previous, quiet_since = None, time.monotonic()
    while True:
        if not await session_alive(svc, cookie_digest):
            yield b"event: signed-out\ndata: {}\n\n"
            return
        current = await figures(svc, locale=locale)
        if changed(previous, current):
            yield f"data: {json.dumps(current, ensure_ascii=False)}\n\n".encode()
            previous, quiet_since = current, time.monotonic()
        elif time.monotonic() - quiet_since >= keep_alive:
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(poll)
