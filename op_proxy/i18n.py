"""Thai and English for every page a person sees.

Messages live in ``translations/<locale>/LC_MESSAGES/messages.po`` (English is the msgid) and are
compiled in memory with Babel at start-up, so there is no build step to forget.
"""

from __future__ import annotations

import contextvars
import io
from collections.abc import Callable
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

SUPPORTED_LOCALES = ("th", "en")
TRANSLATIONS_DIR = Path(__file__).parent / "translations"

# A locale, or how to negotiate it when first asked: most API calls never need one (see web.py).
_current_locale: contextvars.ContextVar[str | Callable[[], str]] = contextvars.ContextVar("locale", default="th")


def _load(locale: str) -> NullTranslations:
    po_file = TRANSLATIONS_DIR / locale / "LC_MESSAGES" / "messages.po"
    if not po_file.exists():
        return NullTranslations()
    with po_file.open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(fp=compiled)


_catalogs = {locale: _load(locale) for locale in SUPPORTED_LOCALES}


def set_locale(locale: str) -> None:
    _current_locale.set(locale if locale in SUPPORTED_LOCALES else SUPPORTED_LOCALES[0])


def negotiate_when_needed(negotiate: Callable[[], str]) -> None:
    """The locale is ``negotiate()``, called when something first asks for it."""
    _current_locale.set(negotiate)


def current_locale() -> str:
    locale = _current_locale.get()
    if callable(locale):
        set_locale(locale := locale())
    return locale


def gettext(message: str, **variables) -> str:
    text = _catalogs[current_locale()].gettext(message)
    return text % variables if variables else text


def N_(message: str) -> str:
    """Marks a message for extraction where it is translated later (``_(variable)``)."""
    return message


def ngettext(singular: str, plural: str, n: int, **variables) -> str:
    text = _catalogs[current_locale()].ngettext(singular, plural, n)
    return text % {"num": n, **variables}


def first_supported(candidates: list[str]) -> str | None:
    for candidate in candidates:
        language = candidate.strip().replace("_", "-").split("-")[0].lower()
        if language in SUPPORTED_LOCALES:
            return language
    return None


def negotiate_locale(*, ui_locales: str | None, chosen: str | None, accept_language, default: str) -> str:
    """OIDC ``ui_locales`` first, then the person's own switch, then the browser, then the config."""
    if chosen in SUPPORTED_LOCALES:
        return chosen
    if ui_locales:
        found = first_supported(ui_locales.split())
        if found:
            return found
    if accept_language:
        found = accept_language.best_match(SUPPORTED_LOCALES)
        if found:
            return found
    return default


def language_name(locale: str) -> str:
    return Locale.parse(locale).get_display_name(locale)
