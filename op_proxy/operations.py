"""What operators and their monitoring ask of a running op-proxy: /healthz, /readyz and /metrics.

Counts are per process (as Prometheus expects of several processes behind one load balancer: scrape
each), except that the workers of one ``op-proxy serve --workers N`` add up: there prometheus_client's
multiprocess mode keeps each worker's counts in files of PROMETHEUS_MULTIPROC_DIR (set by serve) and
any worker's /metrics sums them. The figures that live in the shared database (active SSO sessions)
and the signing key's age are read at each scrape.
Labels hold only bounded, non-personal values: event names, outcomes, upstream names, route templates,
status codes and the usual methods (any other method a client sends is counted as "other"), never a
client_id typed by a stranger, a sub or anything about a person.
"""

from __future__ import annotations

import functools
import logging
import os
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from quart import Blueprint, jsonify
from sqlalchemy import func, select

from op_proxy.services import services
from op_proxy.storage.models import SsoSession

log = logging.getLogger("op_proxy.operations")

REGISTRY = CollectorRegistry()
EVENTS = Counter("op_proxy_events", "Audit events (sign-ins, token issuance, refusals, admin actions)",
                 ["event", "outcome", "upstream"], registry=REGISTRY)
REQUESTS = Histogram("op_proxy_http_request_duration_seconds", "HTTP requests by route and status",
                     ["method", "route", "status"], registry=REGISTRY,
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
# The workers of one serve --workers N: every worker's counts, read from their files at each scrape.
COUNTS = REGISTRY
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    COUNTS = CollectorRegistry()
    MultiProcessCollector(COUNTS)


class Figures:
    """Gauges computed at each scrape (the same whichever worker answers)."""

    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families

blueprint = Blueprint("operations", __name__)


# The methods a request is counted under by name; any other word a client sends as its method
# (HTTP allows any token) is counted as "other", so that strangers cannot add series without end.
COUNTED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Each labelled series looked up once: prometheus_client checks and converts the label values and
# takes a lock on every ``labels()`` call, twice per API request. Bounded as the labels are.
@functools.cache
def _event_series(event: str, outcome: str, upstream: str):
    return EVENTS.labels(event, outcome, upstream)


@functools.cache
def _request_series(method: str, route: str, status: int):
    return REQUESTS.labels(method, route, str(status))


def count_event(event: str, outcome: str, upstream: str | None) -> None:
    _event_series(event, outcome, upstream or "").inc()


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Called by ``logs.EveryRequest`` as each request ends. ``route`` is the route's template
    (/callback/<name>), never the path itself: paths carry ids and tokens."""
    _request_series(method if method in COUNTED_METHODS else "other", route, status).observe(seconds)


@blueprint.route("/healthz")
async def healthz():
    """The process answers."""
    return jsonify({"status": "ok"})


@blueprint.route("/readyz")
async def readyz():
    """The process can serve sign-ins: its database answers, migrated, and it has a key to sign with."""
    svc = services()
    try:
        await svc.db.ping()  # within the connect and query timeouts: a silent database is "not ready"
        svc.keyring.signing_key()
    except Exception as exc:  # whatever is down, the answer is the same: not ready
        log.warning("not ready: %s", type(exc).__name__)
        return jsonify({"status": "not ready", "reason": type(exc).__name__}), 503
    return jsonify({"status": "ready"})


@blueprint.route("/metrics")
async def metrics():
    svc = services()
    if not svc.settings.server.metrics:
        return jsonify({"error": "not_found"}), 404
    now = int(time.time())
    async with svc.db.session() as session:
        active = await session.scalar(select(func.count()).select_from(SsoSession).where(
            SsoSession.ended_at.is_(None), SsoSession.expires_at > now)) or 0
    key = svc.keyring.signing_key()
    figures = CollectorRegistry()
    figures.register(Figures([
        GaugeMetricFamily("op_proxy_active_sso_sessions", "SSO sessions not ended nor expired (all processes)",
                          value=active),
        GaugeMetricFamily("op_proxy_signing_key_age_seconds", "Age of the key signing tokens now",
                          value=max(0, now - (key.signs_from or now))),
    ]))
    return (generate_latest(COUNTS) + generate_latest(figures), 200,
            {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
