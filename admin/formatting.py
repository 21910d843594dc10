"""How the admin pages show times, durations and national ID numbers, in the page's language.

The panel's blueprint gets the filters once (``admin.panel``, with ``formatting.register``); in
templates: ``{{ event.at|when }}``, ``{{ seconds|duration }}``, ``{{ text|mask_ids }}``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_timedelta
from quart import has_app_context

from op_proxy import i18n
from op_proxy.masking import mask_ids, mask_pid  # noqa: F401  (templates and pages use them from here)

THAI_MONTHS = dict(Locale("th").months["format"]["abbreviated"])  # {1: "ม.ค.", ..., 11: "พ.ย.", ...}
BUDDHIST_ERA_OFFSET = 543

def panel_zone() -> ZoneInfo:
    """The panel's time zone (``[admin] timezone``, Asia/Bangkok unless set)."""
    if has_app_context():
        from op_proxy.services import services

        return ZoneInfo(services().settings.admin.timezone)
    return ZoneInfo("Asia/Bangkok")


def when(timestamp: int | float | None, locale: str | None = None, zone: ZoneInfo | None = None) -> str:
    """Unix seconds in the panel's time zone: "22 พ.ย. 2569 14:05" in Thai (Buddhist year),
    "2026-11-22 14:05" in English; "—" when there is no time."""
    if timestamp is None or timestamp == "":
        return "—"
    moment = datetime.fromtimestamp(int(timestamp), zone or panel_zone())
    if (locale or i18n.current_locale()) == "th":
        return (f"{moment.day} {THAI_MONTHS[moment.month]} {moment.year + BUDDHIST_ERA_OFFSET} "
                f"{moment:%H:%M}")
    return f"{moment:%Y-%m-%d %H:%M}"


def duration(seconds: int | float | None, locale: str | None = None) -> str:
    """A length of time in words ("3 วัน", "7 minutes"); "—" when unknown."""
    if seconds is None:
        return "—"
    return format_timedelta(timedelta(seconds=abs(seconds)), locale=locale or i18n.current_locale())


def age(timestamp: int | float | None, locale: str | None = None) -> str:
    """How long ago ``timestamp`` was, in words."""
    return duration(None if timestamp is None else time.time() - timestamp, locale)


def register_labels(bp, name: str, labels: dict[str, str]) -> None:
    """A template global ``name(value)``: the translated label of ``value`` (marked with ``N_``), or
    the value itself when it has none."""
    def label(value: str) -> str:
        return i18n.gettext(labels[value]) if value in labels else value

    bp.app_template_global(name)(label)


def register(bp) -> None:
    bp.app_template_filter("when")(when)
    bp.app_template_filter("duration")(duration)
    bp.app_template_filter("age")(age)
    bp.app_template_filter("mask_ids")(mask_ids)
