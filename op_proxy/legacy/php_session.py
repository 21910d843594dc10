"""Writing the PHP session an app already reads: PHP's own ``php`` serialize handler format, to the
``files`` or ``redis`` (phpredis) save handler the app uses.

A ``sess_*`` file is read and rewritten by PHP, which usually runs as another OS user (PHP-FPM as
``www-data``): op-proxy makes it ``file_mode`` (0660) in ``file_group`` (by default the group of the
save directory), so a PHP that shares that group can open it as PHP's ``files`` handler does
(read-write)."""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import re
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PHP_SID_ALPHABET = "0123456789abcdefghijklmnopqrstuv"  # session.sid_bits_per_character = 5
DEFAULT_REDIS_PREFIX = "PHPREDIS_SESSION:"
VALID_SESSION_ID = re.compile(r"^[a-zA-Z0-9,-]{22,256}$")
DEFAULT_FILE_MODE = 0o660  # the owner (op-proxy) and PHP's group read and write; nobody else

logger = logging.getLogger(__name__)
_warned_directories: set[str] = set()


def file_mode(value) -> int:
    """``file_mode`` as TOML gives it (``0o660``) or as an admin types it (``"0660"``). The owner
    must keep read and write; anything beyond rwx for owner, group and others is refused."""
    if value is None or value == "":
        return DEFAULT_FILE_MODE
    if isinstance(value, bool):
        raise ValueError("an octal file mode such as 0660")
    if isinstance(value, int):
        mode = value
    else:
        text = str(value).strip().lower().removeprefix("0o")
        if not re.fullmatch(r"[0-7]{1,4}", text):
            raise ValueError("an octal file mode such as 0660")
        mode = int(text, 8)
    if mode & ~0o777:
        raise ValueError("permission bits only (at most 0777)")
    if mode & 0o600 != 0o600:
        raise ValueError("op-proxy (the owner) needs read and write (0600 at least)")
    return mode


def file_group(value) -> int | None:
    """``file_group``: a group name or number, or None for the save directory's group."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("a group name or number")
    if isinstance(value, int) or str(value).strip().isdigit():
        return int(value)
    try:
        return grp.getgrnam(str(value).strip()).gr_gid
    except KeyError:
        raise ValueError(f"there is no group {value!r} on this machine") from None


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
        if self.handler != "redis":
            self.file_mode = file_mode(settings.get("file_mode"))
            self.file_group = file_group(settings.get("file_group"))

    async def write(self, session_id: str, values: dict) -> None:
        data = encode_session(values)
        if self.handler == "redis":
            url, prefix = redis_target(self.save_path)
            async with _redis(url) as client:
                await client.set(prefix + session_id, data, ex=self.lifetime)
        else:
            # A save path on a slow or network disk must not stall every other request.
            await asyncio.to_thread(self._write_file, session_id, data)

    async def destroy(self, session_id: str) -> None:
        if not VALID_SESSION_ID.match(session_id):
            return  # never build a path or key from anything but a PHP session id
        if self.handler == "redis":
            url, prefix = redis_target(self.save_path)
            async with _redis(url) as client:
                await client.delete(prefix + session_id)
        else:
            await asyncio.to_thread(self._destroy_file, session_id)

    def _write_file(self, session_id: str, data: str) -> None:
        directory = Path(self.save_path)
        # O_EXCL | O_NOFOLLOW: a fresh id, so never an existing file or a planted symlink.
        fd = os.open(directory / f"sess_{session_id}",
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            self._hand_to_php_group(fd, directory)
            os.fchmod(fd, self.file_mode)  # exactly this, whatever op-proxy's umask
            handle.write(data)

    def _hand_to_php_group(self, fd: int, directory: Path) -> None:
        gid = self.file_group if self.file_group is not None else os.stat(directory).st_gid
        if os.fstat(fd).st_gid == gid:
            return  # already (a setgid directory, or op-proxy's own group)
        try:
            os.fchown(fd, -1, gid)
        except PermissionError:
            if self.file_group is not None:
                raise  # asked for explicitly: the administrator must hear that it cannot be done
            if str(directory) not in _warned_directories:
                _warned_directories.add(str(directory))
                logger.warning("php_session: cannot give session files in %s the directory's group %d (op-proxy "
                               "is not a member); PHP can read them only if it runs as op-proxy's user. Set "
                               "file_group, or add op-proxy's user to that group.", directory, gid)

    def _destroy_file(self, session_id: str) -> None:
        path = Path(self.save_path) / f"sess_{session_id}"
        try:
            path.unlink(missing_ok=True)
        except PermissionError:
            # A sticky save directory (Debian's 1733) lets only a file's owner remove it, and PHP
            # owns a session it regenerated: empty it instead (an empty session is signed out).
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)))
            except OSError as exc:
                logger.warning("php_session: could not end a session in %s: %s", self.save_path,
                               exc.strerror)


def store_errors() -> tuple[type[BaseException], ...]:
    """What a session store may raise when its disk or server fails."""
    from redis.exceptions import RedisError

    return (OSError, RedisError)


def _redis(url: str):
    import redis.asyncio

    return redis.asyncio.from_url(url)
