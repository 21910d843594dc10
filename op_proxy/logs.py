"""Log lines an operator can ship: a request id on every line of a request, as text or as JSON.

``[logging] format = "json"`` writes one object per line (time, level, logger, message, request_id
and the fields a caller passed with ``extra={"fields": {...}}``), ready for Loki, Elasticsearch or
journald's JSON reader. The request id is the reference a person reads on an error page and the
``request_id`` of the audit row written for that request, so a help-desk call finds its log lines.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from contextvars import ContextVar
from datetime import UTC, datetime

from op_proxy.masking import mask_ids

REQUEST_ID_HEADER = "X-Request-Id"
# An id a proxy in front (nginx's $request_id) chose is kept only when it cannot forge anything:
# short, and letters, digits, "-", "_" and "." alone.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{5,63}")

_request_id: ContextVar[str | None] = ContextVar("op_proxy_request_id", default=None)
# Whether this request wrote a log line yet (a one-item list, so the log filter can mark it).
_request_logged: ContextVar[list | None] = ContextVar("op_proxy_request_logged", default=None)
log = logging.getLogger("op_proxy.requests")


def current_request_id() -> str | None:
    return _request_id.get()


def new_request_id() -> str:
    return secrets.token_hex(6)  # 12 characters: short enough to read out on the phone


def request_id_from(header: str | None) -> str:
    return header if header and SAFE_REQUEST_ID.fullmatch(header) else new_request_id()


def register(app) -> None:
    """Every request gets an id before anything logs, and hands it back in ``X-Request-Id``."""
    from quart import g, request

    from op_proxy.masking import loggable

    @app.before_request
    async def take_request_id():
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        _request_id.set(g.request_id)
        _request_logged.set([False])

    @app.after_request
    async def echo_request_id(response):
        request_id = g.get("request_id") or current_request_id()
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
            logged = _request_logged.get()
            if response.status_code >= 400 and logged is not None and not logged[0]:
                # Every refusal leaves at least one line, so the reference on any error page finds one.
                log.info("answered status=%s method=%s path=%s", response.status_code, request.method,
                         loggable(request.path))
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        if record.request_id and (logged := _request_logged.get()) is not None:
            logged[0] = True
        return True


class TextFormatter(logging.Formatter):
    """The classic line, with ``request_id=`` at its end (the message already names its fields)."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return line + (f" request_id={request_id}" if request_id else "")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; national IDs masked in the message and in every field."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_ids(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in (getattr(record, "fields", None) or {}).items():
            entry.setdefault(key, mask_ids(value if isinstance(value, (str, int, float, bool, type(None)))
                                           else str(value)))
        if record.exc_info:
            entry["exception"] = mask_ids(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure(settings, hypercorn_config=None) -> None:
    """Root logging as ``[logging]`` says (``settings`` is a ``LoggingSettings``); hypercorn's own
    lines go through it too, instead of a handler of their own in another format."""
    if hypercorn_config is not None:
        hypercorn_config.errorlog = logging.getLogger("hypercorn.error")
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    formatter = JsonFormatter() if settings.format == "json" else TextFormatter()
    for handler in root.handlers:
        handler.setFormatter(formatter)
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())
    root.setLevel(settings.level)
