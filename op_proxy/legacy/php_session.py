"""Writing the PHP session an app already reads: PHP's own ``php`` serialize handler format, to the
``files`` or ``redis`` (phpredis) save handler the app uses."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PHP_SID_ALPHABET = "0123456789abcdefghijklmnopqrstuv"  # session.sid_bits_per_character = 5
DEFAULT_REDIS_PREFIX = "PHPREDIS_SESSION:"
VALID_SESSION_ID = re.compile(r"^[a-zA-Z0-9,-]{22,256}$")


def serialize(value) -> str:
    """PHP's serialize() for what JSON can hold (strings are counted in UTF-8 bytes)."""
    if value is None:
        return "N;"
    if isinstance(value, bool):
        return f"b:{int(value)};"
    if isinstance(value, int):
        return f"i:{value};"
    if isinstance(value, float):
        return f"d:{value!r};"
    if isinstance(value, str):
        return f's:{len(value.encode())}:"{value}";'
    if isinstance(value, (list, tuple)):
        value = dict(enumerate(value))
    if isinstance(value, dict):
        items = "".join(serialize(key) + serialize(item) for key, item in value.items())
        return f"a:{len(value)}:{{{items}}}"
    raise TypeError(f"cannot serialize {type(value).__name__} for PHP")


def encode_session(values: dict) -> str:
    """session.serialize_handler = php: ``name|serialized;name|serialized...``."""
    return "".join(f"{name}|{serialize(value)}" for name, value in values.items())


def new_session_id() -> str:
    return "".join(secrets.choice(PHP_SID_ALPHABET) for _ in range(32))


def redis_target(save_path: str) -> tuple[str, str]:
    """phpredis' save_path (``tcp://host:port?database=1&prefix=X&auth=...``) → (redis URL, key prefix)."""
    parts = urlsplit(save_path if "://" in save_path else "tcp://" + save_path)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    auth = query.get("auth")
    credentials = f":{auth}@" if auth else ""
    url = f"redis://{credentials}{parts.hostname}:{parts.port or 6379}/{query.get('database', '0')}"
    return url, query.get("prefix", DEFAULT_REDIS_PREFIX)


class PhpSessionStore:
    def __init__(self, settings: dict):
        self.handler = settings.get("save_handler", "files")
        self.save_path = settings["save_path"]
        self.lifetime = int(settings.get("lifetime", 1440))  # session.gc_maxlifetime

    async def write(self, session_id: str, values: dict) -> None:
        data = encode_session(values)
        if self.handler == "redis":
            url, prefix = redis_target(self.save_path)
            async with _redis(url) as client:
                await client.set(prefix + session_id, data, ex=self.lifetime)
        else:
            path = Path(self.save_path) / f"sess_{session_id}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)

    async def destroy(self, session_id: str) -> None:
        if not VALID_SESSION_ID.match(session_id):
            return  # never build a path or key from anything but a PHP session id
        if self.handler == "redis":
            url, prefix = redis_target(self.save_path)
            async with _redis(url) as client:
                await client.delete(prefix + session_id)
        else:
            (Path(self.save_path) / f"sess_{session_id}").unlink(missing_ok=True)


def _redis(url: str):
    import redis.asyncio

    return redis.asyncio.from_url(url)
