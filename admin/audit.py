"""The audit log: every event, newest first, filtered and paginated, and the same rows as CSV.

No national ID ever leaves this page: every cell (page and CSV) goes through ``mask_national_ids``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from quart import Response, request
from sqlalchemy import String, and_, cast, func, or_, select

from admin import formatting
from admin.auth import admin_page, record_admin_action
from op_proxy.i18n import N_
from op_proxy.i18n import gettext as _
from op_proxy.services import services
from op_proxy.storage.models import Account, AuditEvent, Client
from op_proxy.web import NO_STORE, render_page

PAGE_SIZE = 50
CSV_BATCH = 1000

# What each event means, for people; unknown events are shown by their code.
EVENT_LABELS = {
    "sign_in": N_("Sign-in"),
    "authorization_code_issued": N_("Authorization code issued"),
    "tokens_issued": N_("Tokens issued"),
    "token_revoked": N_("Token revoked"),
    "sign_out": N_("Sign-out"),
    "user_handler": N_("User handler call"),
    "legacy_token_issued": N_("Legacy token issued"),
    "legacy_session_created": N_("Legacy session created"),
    "admin_sign_in": N_("Admin sign-in"),
    "admin_action": N_("Admin action"),
    "authorization_code_replayed": N_("Authorization code replayed"),
    "refresh_token_reused": N_("Refresh token reused"),
    "upstream_refresh": N_("Upstream refresh"),
}
OUTCOMES = {"success": N_("success"), "failure": N_("failure")}
ADMIN_EVENTS = ("admin_sign_in", "admin_action")


def mask_national_ids(value) -> str:
    """One cell as text, every 13-digit number in it shown as ``•••••••••1234`` (its last four digits).
    The rule itself is the panel's one (``formatting.mask_ids``), so every page masks alike."""
    return "" if value is None else formatting.mask_ids(str(value))


FORMULA_STARTS = ("=", "+", "-", "@")


def spreadsheet_safe(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (a typed admin username can start with ``=``),
    however much white space or how many control characters come before it (OWASP CSV injection)."""
    stripped = text.lstrip("".join(chr(code) for code in range(33)))
    starts_badly = text[:1] in ("\t", "\r", "\n") or stripped[:1] in FORMULA_STARTS
    return "'" + text if starts_badly else text


@dataclass
class Filters:
    since: date | None = None
    until: date | None = None
    client_id: str = ""
    upstream: str = ""
    sub: str = ""
    event: str = ""
    outcome: str = ""
    person: str = ""
    q: str = ""
    invalid: tuple[str, ...] = ()
    person_usernames: tuple[str, ...] = ()  # what the person's accounts are called at sign-in (see resolve)

    @classmethod
    def from_args(cls, args) -> Filters:
        invalid = []

        def day(name: str) -> date | None:
            text = args.get(name, "").strip()
            if not text:
                return None
            try:
                return date.fromisoformat(text)
            except ValueError:
                invalid.append(name)
                return None

        return cls(since=day("from"), until=day("to"),
                   **{name: args.get(name, "").strip()[:200] for name in
                      ("client_id", "upstream", "sub", "event", "outcome", "person", "q")},
                   invalid=tuple(invalid))

    def query_args(self) -> dict:
        """The filters as query parameters (for the CSV link and the pages), empty ones left out."""
        values = {"from": self.since.isoformat() if self.since else "",
                  "to": self.until.isoformat() if self.until else "",
                  "client_id": self.client_id, "upstream": self.upstream, "sub": self.sub,
                  "event": self.event, "outcome": self.outcome, "person": self.person, "q": self.q}
        return {key: value for key, value in values.items() if value}

    def conditions(self) -> list:
        found = []
        if self.since:
            found.append(AuditEvent.at >= day_start(self.since))
        if self.until:
            found.append(AuditEvent.at < day_start(self.until + timedelta(days=1)))
        for column, value in ((AuditEvent.client_id, self.client_id), (AuditEvent.upstream, self.upstream),
                              (AuditEvent.sub, self.sub), (AuditEvent.event, self.event),
                              (AuditEvent.outcome, self.outcome)):
            if value:
                found.append(column == value)
        if self.q:
            found.append(json_text_holds(AuditEvent.detail, self.q))
        if self.person:
            found.append(about_person(self.person, self.person_usernames))
        return found

    async def resolve(self, session) -> None:
        """The usernames of the accounts the person filter names, so that failed sign-ins (which know
        only the username typed) are found by the person's name or e-mail too."""
        if not self.person:
            return
        rows = (await session.execute(select(Account.upstream_subject, Account.profile).where(
            accounts_named(self.person)))).all()
        names = {name for subject, profile in rows
                 for name in (subject, (profile or {}).get("username"), (profile or {}).get("email"))
                 if isinstance(name, str) and name}
        self.person_usernames = tuple(sorted(names))[:50]


def json_text_holds(column, text: str, *, whole_value: bool = False):
    """``column`` (JSON) holds ``text``, stored with non-ASCII escaped (\u0e2a...) or not; ``whole_value``:
    as a whole string value ("demo", not "demonstration")."""
    stored = cast(column, String)
    spellings = {text, json.dumps(text)[1:-1]}
    if whole_value:
        spellings = {f'"{spelling}"' for spelling in spellings}
    return or_(*(stored.contains(spelling, autoescape=True) for spelling in spellings))


def accounts_named(person: str):
    return or_(json_text_holds(Account.profile, person, whole_value=True), Account.upstream_subject == person)


def about_person(person: str, usernames: tuple[str, ...] = ()):
    """What happened to this person: the events of every account whose profile names them (name,
    username, e-mail), and the failed sign-ins where they (or one of ``usernames``) were typed."""
    typed = [json_text_holds(AuditEvent.detail, name, whole_value=True) for name in {person, *usernames}]
    return or_(AuditEvent.sub.in_(select(Account.sub).where(accounts_named(person))),
               and_(AuditEvent.event == "sign_in", or_(*typed)))


def day_start(day: date) -> int:
    """Midnight starting ``day``, in the panel's time zone (the time the pages show)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=formatting.panel_zone()).timestamp())


def shown_person(profile: dict | None) -> str | None:
    """How the audit log names a person: the name their identity provider gave, else their username."""
    profile = profile or {}
    return profile.get("name") or profile.get("username") or profile.get("email") or None


def row(event: AuditEvent, people: dict[str, str | None] | None = None) -> dict:
    """One event as the page and the CSV show it: every text cell masked. ``people``: a display name
    by account sub; a failed sign-in names the username that was typed."""
    detail = dict(event.detail or {})
    admin = detail.pop("admin", None) if event.event in ADMIN_EVENTS else None
    person = (people or {}).get(event.sub) if event.sub else None
    if person is None and event.event == "sign_in":
        person = detail.get("username")
    cells = {"event": event.event, "outcome": event.outcome, "admin": admin, "person": person, "sub": event.sub,
             "client_id": event.client_id, "upstream": event.upstream, "ip": event.ip,
             "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else "",
             "detail_text": " · ".join(f"{key}: {value}" for key, value in sorted(detail.items()))}
    masked = {key: mask_national_ids(value) for key, value in cells.items()}
    masked.update(id=event.id, at=event.at, admin_event=event.event in ADMIN_EVENTS,
                  event_label=_(EVENT_LABELS[event.event]) if event.event in EVENT_LABELS else event.event,
                  outcome_label=_(OUTCOMES[event.outcome]) if event.outcome in OUTCOMES else event.outcome)
    return masked


def csv_line(cells) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(
        [spreadsheet_safe(mask_national_ids(cell)) for cell in cells])
    return buffer.getvalue()


def iso_time(at: int) -> str:
    return datetime.fromtimestamp(at, formatting.panel_zone()).isoformat()


async def choices(svc) -> dict:
    """What the filter lists offer: known clients and upstreams, and every event type seen."""
    async with svc.db.session() as session:
        clients = (await session.execute(select(Client.client_id, Client.name).order_by(Client.client_id))).all()
        seen = set((await session.scalars(select(AuditEvent.event).distinct())).all())
    events = sorted(set(EVENT_LABELS) | seen)
    return {"clients": [(client_id, name) for client_id, name in clients],
            "upstreams": sorted(svc.connectors),
            "event_types": [(name, _(EVENT_LABELS[name]) if name in EVENT_LABELS else name) for name in events],
            "outcomes": [(name, _(label)) for name, label in OUTCOMES.items()]}


def attach(bp) -> None:
    @bp.route("/audit")
    @admin_page()
    async def audit_log():
        svc = services()
        filters = Filters.from_args(request.args)
        try:
            page = max(1, int(request.args.get("page", "1")))
        except ValueError:
            page = 1
        async with svc.db.session() as session:
            await filters.resolve(session)
            conditions = filters.conditions()
            total = await session.scalar(select(func.count()).select_from(AuditEvent).where(*conditions))
            pages = max(1, math.ceil(total / PAGE_SIZE))
            page = min(page, pages)
            found = (await session.scalars(
                select(AuditEvent).where(*conditions).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
                .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE))).all()
            subs = {event.sub for event in found if event.sub}
            people = {sub: shown_person(profile) for sub, profile in (await session.execute(
                select(Account.sub, Account.profile).where(Account.sub.in_(subs)))).all()} if subs else {}
        args = filters.query_args()
        return await render_page(
            "admin/audit.html", events=[row(event, people) for event in found], filters=filters, args=args,
            total=total, page=page, pages=pages, first=(page - 1) * PAGE_SIZE + 1 if total else 0,
            last=(page - 1) * PAGE_SIZE + len(found), **await choices(svc))

    @bp.route("/audit.csv")
    @admin_page()
    async def audit_csv():
        svc = services()
        filters = Filters.from_args(request.args)
        async with svc.db.session() as session:
            await filters.resolve(session)
            conditions = filters.conditions()
            total = await session.scalar(select(func.count()).select_from(AuditEvent).where(*conditions))
        # The export is itself audited (who took a copy, and how much); the filters are not kept,
        # since a search term could be anything an admin typed.
        await record_admin_action("audit_exported", rows=total)
        header = [_("Time"), _("Event"), _("Outcome"), _("Admin"), "sub", "client_id", _("Identity provider"),
                  _("IP address"), _("Details")]

        async def lines():
            yield "\ufeff" + csv_line(header)
            # Newest first, in batches, keyed on (at, id) so rows written meanwhile neither repeat nor skip.
            after = None
            while True:
                statement = select(AuditEvent).where(*conditions)
                if after is not None:
                    statement = statement.where(or_(AuditEvent.at < after[0],
                                                    (AuditEvent.at == after[0]) & (AuditEvent.id < after[1])))
                async with svc.db.session() as session:
                    batch = (await session.scalars(statement.order_by(
                        AuditEvent.at.desc(), AuditEvent.id.desc()).limit(CSV_BATCH))).all()
                for event in batch:
                    cells = row(event)
                    yield csv_line([iso_time(event.at), cells["event"], cells["outcome"], cells["admin"],
                                    cells["sub"], cells["client_id"], cells["upstream"], cells["ip"],
                                    cells["detail"]])
                if len(batch) < CSV_BATCH:
                    return
                after = (batch[-1].at, batch[-1].id)

        filename = f"audit-{datetime.now(formatting.panel_zone()):%Y%m%d-%H%M}.csv"
        return csv_response(lines(), filename)


def csv_response(body, filename: str) -> Response:
    async def encoded():
        async for text in body:
            yield text.encode("utf-8")

    response = Response(encoded(), 200, {**NO_STORE, "Content-Type": "text/csv; charset=utf-8",
                                         "Content-Disposition": f'attachment; filename="{filename}"'})
    response.timeout = None
    return response
