"""Every message a person can see has a Thai translation (English is the source text)."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from op_proxy import i18n

PACKAGE = Path(i18n.__file__).parent
ADMIN = PACKAGE.parent / "admin"


def messages_in_the_code() -> set[str]:
    method_map = [("**/templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]
    options = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found = set()
    for directory in (PACKAGE, ADMIN):
        for _filename, _lineno, message, _comments, _context in extract_from_dir(
                str(directory), method_map, options_map=options, keywords={"_": None, "gettext": None, "N_": None}):
            found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_message_in_templates_and_code_has_a_thai_translation():
    with (PACKAGE / "translations/th/LC_MESSAGES/messages.po").open("rb") as handle:
        catalog = read_po(handle, locale="th")
    translated = {message.id for message in catalog if message.id and message.string}
    used = messages_in_the_code()
    assert len(used) > 50  # the extraction really found the pages' texts
    assert sorted(used - translated) == []


def test_the_language_follows_ui_locales_then_the_browser():
    from werkzeug.datastructures import LanguageAccept

    assert i18n.negotiate_locale(ui_locales="en-US th", chosen=None, accept_language=None, default="th") == "en"
    assert i18n.negotiate_locale(ui_locales="fr", chosen=None,
                                 accept_language=LanguageAccept([("en", 1)]), default="th") == "en"
    assert i18n.negotiate_locale(ui_locales=None, chosen="th",
                                 accept_language=LanguageAccept([("en", 1)]), default="en") == "th"
    assert i18n.negotiate_locale(ui_locales=None, chosen=None, accept_language=None, default="th") == "th"
