"""Masking Thai national ID numbers wherever text leaves op-proxy for people: logs, audit rows, the panel.

A 13-digit number is treated as a national ID whatever field it arrives in, because a person can type
one anywhere (an admin sign-in name, a search box) and the log must never hold it.
"""

from __future__ import annotations

import json
import re

# A Thai national ID: 13 digits, sometimes written 1-1007-00000-01-9 or with spaces.
NATIONAL_ID = re.compile(r"(?<!\d)\d(?:[- ]?\d){12}(?!\d)")


def mask_pid(value) -> str:
    """A national ID with only its last 4 digits shown."""
    digits = re.sub(r"\D", "", str(value))
    return "•" * max(len(digits) - 4, 0) + digits[-4:] if digits else ""


def mask_ids(value):
    """Every 13-digit national ID in ``value`` (text, or a list/dict of them) masked."""
    if isinstance(value, str):
        return NATIONAL_ID.sub(lambda match: mask_pid(match.group(0)), value)
    if isinstance(value, dict):
        return {key: mask_ids(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_ids(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and len(str(abs(value))) == 13:
        return mask_pid(value)
    return value


# Printable ASCII but a space, '"', '=' and '\\': a field made only of these is logged as it is.
PLAIN_FIELD = re.compile(r'[!#-<>-\[\]-~]+')


def loggable(value) -> str:
    """A value as one log field: national IDs masked, and quoted as JSON when it holds a space, a
    quote, an "=" or a control character, so that text a stranger typed (a sign-in name with a line
    break) can never forge a log line or a field of its own."""
    text = mask_ids(str(value))
    if PLAIN_FIELD.fullmatch(text):  # ids, names and codes: one regular expression instead of a loop
        return text
    if text == "" or any(ch.isspace() or ch in '"=\\' or not ch.isprintable() for ch in text):
        return json.dumps(text, ensure_ascii=False)
    return text
