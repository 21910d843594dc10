"""Configuration: one TOML file (``OP_PROXY_CONFIG``), overridden by ``OP_PROXY_*`` variables.

Everything is validated once at start-up; a mistake stops the process with the file, the key and
the reason, so an admin never finds out about a typo from a failed login.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from contextvars import ContextVar
from dataclasses import dataclass, field, fields, is_dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENV_PREFIX = "OP_PROXY_"
DEFAULT_CONFIG_FILE = "conf/dev.toml"


class ConfigError(Exception):
    def __init__(self, source: str, key: str, reason: str):
        super().__init__(f"{source}: {key}: {reason}")
        self.source, self.key, self.reason = source, key, reason


@dataclass(frozen=True)
class ServerSettings:
    issuer: str
    host: str = "127.0.0.1"
    port: int = 8080
    secure_cookies: bool = True
    session_lifetime: int = 8 * 3600
    default_locale: str = "th"
    # Reverse proxies whose X-Forwarded-For is believed (addresses or networks); none: the socket peer.
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    metrics: bool = True  # Prometheus text at /metrics (counts only: nothing about a person)
    graceful_timeout: int = 30  # on SIGTERM/SIGINT, seconds in-flight requests get to finish
    read_timeout: int = 10  # seconds a request body may pause before the connection is dropped (408)
    startup_timeout: int = 60  # seconds start-up may wait on the database (migrations) before giving up


@dataclass(frozen=True)
class TokenSettings:
    authorization_code_lifetime: int = 60
    id_token_lifetime: int = 3600
    access_token_lifetime: int = 900
    refresh_token_lifetime: int = 30 * 86400
    pending_login_lifetime: int = 900


@dataclass(frozen=True)
class KeySettings:
    directory: str = "keys"
    algorithm: str = "RS256"
    rsa_bits: int = 2048
    # A new key is published this long before it signs, so every cached JWKS already has it.
    publish_ahead: int = 3600
    jwks_max_age: int = 600


@dataclass(frozen=True)
class ClientSettings:
    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    client_secret_hash: str | None = None
    token_endpoint_auth_method: str = "client_secret_basic"
    jwks: dict | None = None
    require_consent: bool = False
    require_pkce: bool = False
    allowed_scopes: tuple[str, ...] = ()
    allowed_upstreams: tuple[str, ...] = ()
    subject_type: str = "public"
    user_handler_endpoint: str | None = None
    user_handler_secret: str | None = None
    mode: str = "oidc"
    legacy_key: str | None = None
    legacy_use_global_key: bool = False
    legacy_token_lifetime: int = 3600
    legacy_default: bool = False
    access_token_lifetime: int | None = None  # None: the [tokens] lifetime; a client may only shorten it
    id_token_lifetime: int | None = None
    refresh_token_lifetime: int | None = None
    php_session: dict | None = None
    # "jwt": RFC 9068 access tokens resource servers verify alone; "opaque": random strings they
    # introspect (RFC 7662), which saves a signature per token response.
    access_token_format: str = "jwt"



@dataclass(frozen=True)
class LocalUser:
    username: str
    password_hash: str
    claims: dict[str, Any]


@dataclass(frozen=True)
class OidcUpstreamSettings:
    """An OpenID Provider upstream. Every quirk of a real provider is a setting here (UPSTREAMS.md)."""

    issuer: str
    client_id: str
    client_secret: str | None
    scopes: tuple[str, ...]
    callback_path: str
    discovery_url: str
    token_endpoint_auth_method: str = "client_secret_basic"
    id_token_signing_algs: tuple[str, ...] = ("RS256", "ES256")
    issuer_aliases: tuple[str, ...] = ()
    issuer_template: str | None = None  # e.g. "https://login.microsoftonline.com/{tid}/v2.0"
    use_nonce: bool = True
    use_pkce: bool = True
    endpoints: dict[str, str] = field(default_factory=dict)  # overrides discovery
    introspection_endpoint: str | None = None
    introspect_at_sign_in: bool = False  # ask the upstream whether the access token is active, for its sub
    subject_claims: tuple[str, ...] = ("sub",)  # Microsoft: ("tid", "oid")
    claim_mapping: dict[str, str] = field(default_factory=dict)  # normalized field → upstream claim
    passthrough_claims: tuple[str, ...] = ()  # kept under their own names (ThaID's pid, birthdate ...)
    fetch_userinfo: bool = True
    authorize_params: dict[str, str] = field(default_factory=dict)
    # pass an app's prompt=login and max_age on, so an upstream session does not sign the person in silently
    forward_prompt: bool = True
    timeout: float = 10.0  # one request to the upstream
    # everything a callback asks the upstream (token, keys, introspection, userinfo) together
    sign_in_deadline: float = 15.0
    acr: str | None = None
    refresh: bool = True  # refresh at the upstream when an app refreshes (if it gave a refresh token)
    logout: bool = True  # send the person on to the upstream's end_session_endpoint, where advertised


@dataclass(frozen=True)
class UpstreamSettings:
    name: str
    kind: str
    display_name: dict[str, str]
    users: tuple[LocalUser, ...] = ()
    oidc: OidcUpstreamSettings | None = None


@dataclass(frozen=True)
class LegacySettings:
    # The old gateway's JWT_SECRET_KEY, for apps an admin switches to it (drop-in moves).
    global_key: str | None = None
    # Roles ``op-proxy users set-role`` accepts: the old gateway's subscriber (every new person's)
    # and admin, and editor between them.
    roles: tuple[str, ...] = ("subscriber", "editor", "admin")


@dataclass(frozen=True)
class AdminPanelSettings:
    # People whose ``groups`` (as an upstream says, mapped) hold one of these may sign in to the
    # panel through op-proxy itself, as admin or viewer.
    sso_admin_groups: tuple[str, ...] = ()
    sso_viewer_groups: tuple[str, ...] = ()
    # Only these upstreams' ``groups`` are believed for that (none by default): an upstream where
    # people edit their own groups (a self-service directory, a social login) must never make admins.
    sso_upstreams: tuple[str, ...] = ()
    # The panel shows times, groups the dashboard's hours and reads the audit filter's days in this
    # zone, whatever the server's own clock zone is (containers often run in UTC).
    timezone: str = "Asia/Bangkok"


@dataclass(frozen=True)
class StorageSettings:
    # Every process deletes expired rows this often (seconds, with jitter); 0: only `op-proxy db purge`.
    purge_interval: int = 600
    # A row is deleted this long after it expired, so a server whose clock runs ahead never deletes
    # what another still accepts.
    purge_grace: int = 60


@dataclass(frozen=True)
class AuditSettings:
    # Days audit events are kept. The organisation decides, as the data controller under the PDPA;
    # at least 1, because the dashboard shows the last 24 hours.
    retention_days: int = 365


@dataclass(frozen=True)
class BrandingSettings:
    """The organisation's face on every page a person sees (see op_proxy/branding.py)."""
    name_th: str = ""
    name_en: str = ""
    logo: str | None = None  # a file, served at /branding/logo, or a URL under the issuer
    primary_color: str = "#1f4e9c"  # buttons and links; white text on it must pass WCAG AA
    support_email: str | None = None
    support_phone: str | None = None
    support_url: str | None = None


@dataclass(frozen=True)
class LoggingSettings:
    format: str = "text"  # "json": one object per line, for a log shipper
    level: str = "INFO"


@dataclass(frozen=True)
class Settings:
    source: str
    server: ServerSettings
    database_url: str
    tokens: TokenSettings
    keys: KeySettings
    clients: tuple[ClientSettings, ...]
    upstreams: dict[str, UpstreamSettings]
    legacy: LegacySettings = LegacySettings()
    admin: AdminPanelSettings = AdminPanelSettings()
    storage: StorageSettings = StorageSettings()
    audit: AuditSettings = AuditSettings()
    branding: BrandingSettings = BrandingSettings()
    logging: LoggingSettings = LoggingSettings()

    @property
    def issuer(self) -> str:
        return self.server.issuer


CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
UPSTREAM_KINDS = ("local", "oidc", "thaid")
PRESETS_DIR = Path(__file__).resolve().parents[1] / "conf" / "providers"
UPSTREAM_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                      "HS256", "HS384", "HS512")


def load_settings(path: str | os.PathLike | None = None, environ: dict | None = None) -> Settings:
    environ = dict(os.environ if environ is None else environ)
    path = Path(path or environ.get(ENV_PREFIX + "CONFIG") or DEFAULT_CONFIG_FILE)
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, "-", "file not found (set OP_PROXY_CONFIG)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "-", f"not valid TOML: {exc}") from None
    overrides = apply_environment_overrides(raw, environ)
    return parse_settings(raw, source, overrides)


@dataclass
class EnvironmentOverrides:
    """Which keys ``OP_PROXY_*`` variables set (so a complaint names the variable, not the file), and
    which tables only they made (``OP_PROXY_TEST_MARIADB_HOST`` is some other tool's, not a setting)."""

    variables: dict[str, str] = field(default_factory=dict)  # "server.port" -> "OP_PROXY_SERVER_PORT"
    made_tables: set[str] = field(default_factory=set)  # "test"


def apply_environment_overrides(raw: dict, environ: dict) -> EnvironmentOverrides:
    """``OP_PROXY_SECTION_KEY`` (or ``OP_PROXY_A__B__C`` for deeper keys) replaces a file value."""
    overrides = EnvironmentOverrides()
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        rest = name[len(ENV_PREFIX):].lower()
        if "__" in rest:
            path = rest.split("__")
        else:
            section, _, key = rest.partition("_")
            if not key:
                continue
            path = [section, key]
        node = raw
        for depth, part in enumerate(path[:-1]):
            if part not in node:
                overrides.made_tables.add(".".join(path[:depth + 1]))
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = coerce_like(node.get(path[-1]), value)
            overrides.variables[".".join(path)] = name
    return overrides


class FromEnvironment(str):
    """A value an ``OP_PROXY_*`` variable gave for a key the file leaves out: text, read as whatever
    type the key wants (``OP_PROXY_SERVER_METRICS=false`` is a boolean, ``…_CLIENT_ID=12345`` text)."""


def coerce_like(current: Any, value: str) -> Any:
    if current is None:
        return FromEnvironment(value)
    if isinstance(current, bool):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(current, int):
        try:
            return int(value)
        except ValueError:
            return value
    if isinstance(current, list):
        return from_environment(FromEnvironment(value), list)
    return value


def from_environment(value: FromEnvironment, kind: type | tuple) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if str in kinds:
        return str(value)
    if bool in kinds and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    if int in kinds and value.strip().lstrip("-").isdigit():
        return int(value)
    if float in kinds:
        try:
            return float(value)
        except ValueError:
            pass
    if list in kinds:  # OP_PROXY_SERVER_TRUSTED_PROXIES="10.0.0.0/8, 127.0.0.1"
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


@dataclass
class _Parse:
    """One reading of the file: every table read (to find the keys nobody read) and the overrides."""

    overrides: EnvironmentOverrides
    readers: list[_Reader] = field(default_factory=list)


_parsing: ContextVar[_Parse | None] = ContextVar("op_proxy_config_parse", default=None)


def complaint_source(source: str, key: str) -> str:
    """Where a wrong value came from: the ``OP_PROXY_*`` variable that set it, else the file."""
    parse = _parsing.get()
    variable = parse and parse.overrides.variables.get(key)
    return f"environment variable {variable}" if variable else source


class _Reader:
    """Reads one table of the file, naming ``file: key`` in every complaint, and remembering which
    keys it read: whatever else the table holds is a mistake (see ``refuse_unknown_keys``)."""

    def __init__(self, source: str, table: dict, prefix: str):
        if not isinstance(table, dict):
            raise ConfigError(complaint_source(source, prefix), prefix, "must be a table")
        self.source, self.table, self.prefix = source, table, prefix
        self.read: set[str] = set()
        if (parse := _parsing.get()) is not None:
            parse.readers.append(self)

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, reason: str):
        key = self.key(name)
        raise ConfigError(complaint_source(self.source, key), key, reason)

    def get(self, name: str, kind: type | tuple, default: Any = ..., required: bool = False):
        self.read.add(name)
        if name not in self.table:
            if required or default is ...:
                self.fail(name, "is required")
            return default
        value = self.table[name]
        if isinstance(value, FromEnvironment):
            value = from_environment(value, kind)
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.fail(name, f"must be of type {names}, got {value!r}")
        return value

    def secret_from_environment(self, name: str) -> str | None:
        """``name`` (a ``*_env`` key) names the environment variable holding a secret, so that none
        sits in a committed config file; None when the key is absent, a complaint naming the
        variable when it is unset or empty."""
        variable = self.get(name, str, None)
        if not variable:
            return None
        secret = os.environ.get(variable)
        if not secret:
            self.fail(name, f"environment variable {variable} is not set")
        return secret

    def positive_int(self, name: str, default: int | None) -> int | None:
        value = self.get(name, int, default)
        if value is not None and value <= 0:
            self.fail(name, "must be a positive number of seconds")
        return value

    def strings(self, name: str, default: tuple = ()) -> tuple[str, ...]:
        value = self.get(name, list, list(default))
        if not all(isinstance(item, str) for item in value):
            self.fail(name, "must be a list of strings")
        return tuple(value)

    def sub(self, name: str) -> _Reader:
        self.read.add(name)
        return _Reader(self.source, self.table.get(name, {}), self.key(name))


# The dataclass whose fields a table's keys may be, by the table's place in the file ("clients[0]" is
# "clients[]"): a key another part of op-proxy adds to a settings class is known here at once.
TABLE_SETTINGS = {
    "": ("Settings",), "server": ("ServerSettings",), "tokens": ("TokenSettings",), "keys": ("KeySettings",),
    "legacy": ("LegacySettings",), "admin": ("AdminPanelSettings",), "clients[]": ("ClientSettings",),
    "upstreams.*": ("UpstreamSettings", "OidcUpstreamSettings"), "upstreams.*.users[]": ("LocalUser",),
}


def settings_fields(prefix: str) -> set[str]:
    """The field names of the settings dataclasses a table at ``prefix`` is read into."""
    shape = re.sub(r"\[\d+\]", "[]", prefix)
    shape = re.sub(r"^upstreams\.[^.]+", "upstreams.*", shape)
    names = set()
    for class_name in TABLE_SETTINGS.get(shape, ()):
        model = globals()[class_name]
        if is_dataclass(model):
            names.update(f.name for f in fields(model))
    return names


def refuse_unknown_keys(parse: _Parse, sections_only: bool = False) -> None:
    """A key no parser read and no settings class has is a typo (``[sever]``, ``acess_token_lifetime``):
    stop with the file, the key, and the nearest key that exists. ``sections_only``: the top level only
    (when reading stopped half-way, a table's later keys are unread, not unknown)."""
    tables: dict[str, tuple[_Reader, set[str], set[str]]] = {}
    for reader in parse.readers:
        if sections_only and reader.prefix:
            continue
        first, present, known = tables.get(reader.prefix, (reader, set(), set()))
        present.update(reader.table)
        known.update(reader.read)
        tables[reader.prefix] = (first, present, known)
    for prefix, (reader, present, known) in tables.items():
        known |= settings_fields(prefix)
        if not prefix:  # Settings.database_url is the file's [database] url; Settings.source is no key
            known = (known - {"source", "database_url"}) | {"database"}
        for name in sorted(present - known, key=str):
            if reader.key(name) in parse.overrides.made_tables:
                continue  # an OP_PROXY_* variable of something else, not a setting
            is_table = isinstance(reader.table.get(name), dict) and not prefix
            candidates = sorted(known)
            near = difflib.get_close_matches(str(name), candidates, n=1)
            if is_table:
                hint = f"; did you mean [{near[0]}]?" if near else ""
                reader.fail(name, f"unknown section{hint}")
            hint = f"did you mean {near[0]!r}?" if near else f"the settings here are {', '.join(candidates)}"
            reader.fail(name, f"unknown setting; {hint}")


def parse_settings(raw: dict, source: str, overrides: EnvironmentOverrides | None = None) -> Settings:
    parse = _Parse(overrides or EnvironmentOverrides())
    token = _parsing.set(parse)
    try:
        try:
            settings = read_settings(raw, source)
        except ConfigError:
            refuse_unknown_keys(parse, sections_only=True)  # "[sever]" says more than "server.issuer: required"
            raise
        refuse_unknown_keys(parse)
    finally:
        _parsing.reset(token)
    return settings


def read_settings(raw: dict, source: str) -> Settings:
    root = _Reader(source, raw, "")
    server = parse_server(root.sub("server"))
    database = root.sub("database")
    upstreams = parse_upstreams(root.sub("upstreams"), preset_dirs(source))
    tokens = parse_tokens(root.sub("tokens"))
    clients = parse_clients(source, root.get("clients", list, []), upstreams, tokens)
    return Settings(
        source=source,
        server=server,
        database_url=database.get("url", str, "sqlite+aiosqlite:///var/op-proxy.sqlite3"),
        tokens=tokens,
        keys=parse_keys(root.sub("keys")),
        clients=clients,
        upstreams=upstreams,
        legacy=parse_legacy(root.sub("legacy")),
        admin=parse_admin(root.sub("admin"), upstreams),
        storage=parse_storage(root.sub("storage")),
        audit=parse_audit(root.sub("audit")),
        branding=parse_branding(root.sub("branding"), server.issuer),
        logging=parse_logging(root.sub("logging")),
    )


def parse_storage(r: _Reader) -> StorageSettings:
    found = {name: r.get(name, int, default) for name, default in
             (("purge_interval", StorageSettings.purge_interval), ("purge_grace", StorageSettings.purge_grace))}
    for name, value in found.items():
        if value < 0:
            r.fail(name, "must be a number of seconds, 0 or more")
    return StorageSettings(**found)


def parse_audit(r: _Reader) -> AuditSettings:
    days = r.get("retention_days", int, AuditSettings.retention_days)
    if days < 1:
        r.fail("retention_days", "must be a number of days, at least 1 (the dashboard shows the last 24 hours)")
    return AuditSettings(retention_days=days)


def parse_branding(r: _Reader, issuer: str) -> BrandingSettings:
    from op_proxy.branding import LOGO_TYPES, contrast_with_white

    logo = r.get("logo", str, None)
    if logo and "://" in logo:
        if not logo.startswith(issuer.rstrip("/") + "/"):
            r.fail("logo", f"a logo URL must be under the issuer {issuer} (pages allow no other origin)")
    elif logo:
        path = Path(logo) if Path(logo).is_absolute() else Path(r.source).resolve().parent / logo
        if path.suffix.lower() not in LOGO_TYPES:
            r.fail("logo", f"must be one of {', '.join(sorted(LOGO_TYPES))} (or a URL under the issuer)")
        if not path.is_file():
            r.fail("logo", f"file not found: {path}")
        logo = str(path)
    color = r.get("primary_color", str, BrandingSettings.primary_color)
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", color):
        r.fail("primary_color", f"must be a colour written #rrggbb, got {color!r}")
    if (ratio := contrast_with_white(color)) < 4.5:
        r.fail("primary_color", f"white text on {color} has contrast {ratio:.2f}:1; WCAG AA needs 4.5:1 "
                                "(choose a darker colour)")
    url = r.get("support_url", str, None)
    if url and not url.startswith(("https://", "http://")):
        r.fail("support_url", "must be an http(s) URL")
    return BrandingSettings(name_th=r.get("name_th", str, ""), name_en=r.get("name_en", str, ""), logo=logo,
                            primary_color=color.lower(), support_email=r.get("support_email", str, None),
                            support_phone=r.get("support_phone", str, None), support_url=url)


def parse_logging(r: _Reader) -> LoggingSettings:
    form = r.get("format", str, "text")
    if form not in ("text", "json"):
        r.fail("format", f'must be "text" or "json", got {form!r}')
    level = r.get("level", str, "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        r.fail("level", f"must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    return LoggingSettings(format=form, level=level)


def parse_admin(r: _Reader, upstreams: dict | None = None) -> AdminPanelSettings:
    timezone = r.get("timezone", str, "Asia/Bangkok")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        r.fail("timezone", f"unknown time zone {timezone!r} (an IANA name such as Asia/Bangkok)")
    admin_groups, viewer_groups = r.strings("sso_admin_groups"), r.strings("sso_viewer_groups")
    trusted = r.strings("sso_upstreams")
    for name in trusted:
        if name not in (upstreams or {}):
            r.fail("sso_upstreams", f"{name!r} is not a configured upstream")
    if (admin_groups or viewer_groups) and not trusted:
        r.fail("sso_upstreams", "name the upstreams whose groups may make admins and viewers "
                                "(for example [\"psu\"]); no upstream is trusted for that by default")
    return AdminPanelSettings(sso_admin_groups=admin_groups, sso_viewer_groups=viewer_groups,
                              sso_upstreams=trusted, timezone=timezone)


def parse_legacy(r: _Reader) -> LegacySettings:
    in_file = r.get("global_key", str, None)
    key = r.secret_from_environment("global_key_env") or in_file
    from op_proxy.legacy.users import ROLE

    roles = r.strings("roles") or LegacySettings.roles
    for role in roles:
        if not ROLE.fullmatch(role):
            r.fail("roles", f"{role!r}: a role is 1 to 50 letters, digits and _ . : -")
    if "subscriber" not in roles:
        r.fail("roles", "must include subscriber, the role every new person gets")
    return LegacySettings(global_key=key, roles=tuple(roles))


def parse_server(r: _Reader) -> ServerSettings:
    issuer = r.get("issuer", str, required=True)
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        r.fail("issuer", "must be an https URL without query or fragment")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        r.fail("issuer", "plain http is only allowed on loopback; use https")
    if issuer.endswith("/"):
        r.fail("issuer", "must not end with '/'")
    locale = r.get("default_locale", str, "th")
    if locale not in ("th", "en"):
        r.fail("default_locale", "must be 'th' or 'en'")
    return ServerSettings(
        issuer=issuer,
        host=r.get("host", str, "127.0.0.1"),
        port=r.get("port", int, 8080),
        secure_cookies=r.get("secure_cookies", bool, parts.scheme == "https"),
        session_lifetime=r.positive_int("session_lifetime", 8 * 3600),
        default_locale=locale,
        trusted_proxies=parse_trusted_proxies(r),
        metrics=r.get("metrics", bool, True),
        graceful_timeout=r.positive_int("graceful_timeout", 30),
        read_timeout=r.positive_int("read_timeout", 10),
        startup_timeout=r.positive_int("startup_timeout", 60),
    )


def parse_trusted_proxies(r: _Reader) -> tuple[IPv4Network | IPv6Network, ...]:
    if "trust_forwarded_headers" in r.table:
        r.fail("trust_forwarded_headers", "replaced by trusted_proxies: list your reverse proxies' addresses "
                                          '(e.g. trusted_proxies = ["127.0.0.1"]); only they may set X-Forwarded-For')
    networks = []
    for entry in r.strings("trusted_proxies"):
        try:
            networks.append(ip_network(entry.strip(), strict=False))
        except ValueError:
            r.fail("trusted_proxies", f"{entry!r} is not an IP address or network (such as 10.0.0.0/8)")
    return tuple(networks)


def parse_tokens(r: _Reader) -> TokenSettings:
    defaults = TokenSettings()
    return TokenSettings(
        **{name: r.positive_int(name, getattr(defaults, name)) for name in defaults.__dataclass_fields__}
    )


def parse_keys(r: _Reader) -> KeySettings:
    algorithm = r.get("algorithm", str, "RS256")
    if algorithm != "RS256":
        r.fail("algorithm", "only RS256 is supported")
    bits = r.get("rsa_bits", int, 2048)
    if bits < 2048:
        r.fail("rsa_bits", "must be at least 2048")
    publish_ahead = r.get("publish_ahead", int, 3600)
    jwks_max_age = r.positive_int("jwks_max_age", 600)
    if publish_ahead < jwks_max_age:
        r.fail("publish_ahead", "must be at least jwks_max_age, or a cached JWKS would miss the new key")
    return KeySettings(
        directory=r.get("directory", str, "keys"),
        algorithm=algorithm,
        rsa_bits=bits,
        publish_ahead=publish_ahead,
        jwks_max_age=jwks_max_age,
    )


def parse_clients(source: str, entries: list, upstreams: dict, tokens: TokenSettings) -> tuple[ClientSettings, ...]:
    clients, seen = [], set()
    for index, entry in enumerate(entries):
        r = _Reader(source, entry, f"clients[{index}]")
        client = parse_client(r, upstreams, tokens)
        if client.client_id in seen:
            r.fail("client_id", f"{client.client_id!r} is defined twice")
        if client.legacy_default and any(c.legacy_default for c in clients):
            r.fail("legacy_default", "only one client may be the default of /public/login.php")
        seen.add(client.client_id)
        clients.append(client)
    return tuple(clients)


def parse_client(r: _Reader, upstreams: dict, tokens: TokenSettings) -> ClientSettings:
    from op_proxy.clients.validation import CLIENT_LIFETIMES, ClientValidationError, validate_client_fields

    fields = dict(
        client_id=r.get("client_id", str, required=True),
        name=r.get("name", str, r.table.get("client_id", "")),
        redirect_uris=r.strings("redirect_uris"),
        post_logout_redirect_uris=r.strings("post_logout_redirect_uris"),
        client_secret_hash=r.get("client_secret_hash", str, None),
        token_endpoint_auth_method=r.get("token_endpoint_auth_method", str, "client_secret_basic"),
        jwks=r.get("jwks", dict, None),
        require_consent=r.get("require_consent", bool, False),
        require_pkce=r.get("require_pkce", bool, False),
        allowed_scopes=r.strings("allowed_scopes"),
        allowed_upstreams=r.strings("allowed_upstreams"),
        subject_type=r.get("subject_type", str, "public"),
        user_handler_endpoint=r.get("user_handler_endpoint", str, None),
        user_handler_secret=r.get("user_handler_secret", str, None),
        mode=r.get("mode", str, "oidc"),
        legacy_use_global_key=r.get("legacy_use_global_key", bool, False),
        legacy_token_lifetime=r.positive_int("legacy_token_lifetime", 3600),
        legacy_default=r.get("legacy_default", bool, False),
        php_session=r.get("php_session", dict, None),
        access_token_format=r.get("access_token_format", str, "jwt"),
        **{name: r.positive_int(name, None) for name in CLIENT_LIFETIMES},
    )
    if fields["access_token_format"] not in ("jwt", "opaque"):
        r.fail("access_token_format", '"jwt" (RFC 9068, the default) or "opaque"')
    if fields["mode"] != "oidc" and "token_endpoint_auth_method" not in r.table:
        fields["token_endpoint_auth_method"] = "none"  # a legacy app never calls the token endpoint
    if legacy_key := r.secret_from_environment("legacy_key_env"):
        fields["legacy_key"] = legacy_key
    if handler_secret := r.secret_from_environment("user_handler_secret_env"):
        fields["user_handler_secret"] = handler_secret
    secret_hash = fields["client_secret_hash"]
    if secret_hash:
        from op_proxy.security import is_argon2_hash, is_secret_digest

        if not (is_argon2_hash(secret_hash) or is_secret_digest(secret_hash)):
            r.fail("client_secret_hash", "must be a digest of a generated secret (`op-proxy clients hash-secret`) "
                                         "or an argon2 hash of a chosen one (`op-proxy hash-password`)")
    if secret := r.secret_from_environment("client_secret_env"):
        from op_proxy.security import hash_secret

        fields["client_secret_hash"] = hash_secret(secret)
    if fields["mode"] == "query_token" and not fields.get("legacy_key") and not fields["legacy_use_global_key"]:
        r.fail("legacy_key_env", "a query_token client needs its HS256 key (legacy_key_env) or "
                                 "legacy_use_global_key = true")
    for upstream in fields["allowed_upstreams"]:
        if upstream not in upstreams:
            r.fail("allowed_upstreams", f"unknown upstream {upstream!r}")
    try:
        validate_client_fields(fields, tokens)
    except ClientValidationError as exc:
        r.fail(exc.field, exc.reason)
    return ClientSettings(**fields)


def preset_dirs(source: str) -> tuple[Path, ...]:
    """Presets next to the config file (``conf/providers/``) first, then the ones op-proxy ships."""
    return (Path(source).resolve().parent / "providers", PRESETS_DIR)


def with_preset(r: _Reader, dirs: tuple[Path, ...]) -> _Reader:
    """``preset = "thaid"`` reads ``providers/thaid.toml``; the upstream's own keys win."""
    name = r.get("preset", str, None)
    if name is None:
        return r
    for directory in dirs:
        path = directory / f"{name}.toml"
        if path.exists():
            try:
                preset = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(str(path), "-", f"not valid TOML: {exc}") from None
            return _Reader(r.source, {**preset, **r.table}, r.prefix)
    r.fail("preset", f"no preset {name!r} in {' or '.join(str(d) for d in dirs)}")


def parse_upstreams(r: _Reader, dirs: tuple[Path, ...] = (PRESETS_DIR,)) -> dict[str, UpstreamSettings]:
    upstreams = {}
    for name in r.table:
        if not name.replace("-", "").replace("_", "").isalnum():
            r.fail(name, "an upstream name may hold letters, digits, '-' and '_' only")
        u = with_preset(r.sub(name), dirs)
        kind = u.get("kind", str, required=True)
        if kind not in UPSTREAM_KINDS:
            u.fail("kind", f"unknown kind {kind!r}; one of {', '.join(UPSTREAM_KINDS)}")
        display = u.get("display_name", (str, dict), name)
        if isinstance(display, str):
            display = {"th": display, "en": display}
        users = tuple(parse_local_user(u, i, entry) for i, entry in enumerate(u.get("users", list, [])))
        oidc = parse_oidc_upstream(u, name) if kind in ("oidc", "thaid") else None
        upstreams[name] = UpstreamSettings(name, kind, display, users, oidc)
    paths = [u.oidc.callback_path for u in upstreams.values() if u.oidc]
    for path in paths:
        if paths.count(path) > 1:
            r.fail("callback_path", f"{path} is used by two upstreams; each needs its own (mix-up defence)")
    return upstreams


def upstream_secret(r: _Reader) -> str | None:
    """From the environment or a file, so that no secret sits in a committed config file."""
    secret = r.get("client_secret", str, None)
    from_environment = r.secret_from_environment("client_secret_env")
    secret_file = r.get("client_secret_file", str, None)
    if from_environment:
        secret = from_environment
    elif secret_file:
        try:
            secret = Path(secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            r.fail("client_secret_file", f"cannot read {secret_file}: {exc.strerror}")
    return secret or None


def positive_seconds(r: _Reader, key: str, default: float) -> float:
    value = float(r.get(key, (int, float), default))
    if value <= 0:
        r.fail(key, "must be a number of seconds above 0")
    return value


def parse_oidc_upstream(r: _Reader, name: str) -> OidcUpstreamSettings:
    issuer = r.get("issuer", str, required=True).rstrip("/")
    if not issuer:
        r.fail("issuer", "is required (complete the preset)")
    client_id = r.get("client_id", str, "")
    if not client_id:
        r.fail("client_id", "is required: the client id this upstream registered for op-proxy")
    method = r.get("token_endpoint_auth_method", str, "client_secret_basic")
    if method not in UPSTREAM_AUTH_METHODS:
        r.fail("token_endpoint_auth_method", f"one of {', '.join(UPSTREAM_AUTH_METHODS)}")
    algorithms = r.strings("id_token_signing_algs", ("RS256", "ES256"))
    for algorithm in algorithms:
        if algorithm not in SIGNING_ALGORITHMS:
            r.fail("id_token_signing_algs", f"{algorithm!r} is not accepted (never 'none')")
    secret = upstream_secret(r)
    if secret is None:
        r.fail("client_secret_env", "the upstream client secret is required (client_secret_env or client_secret_file)")
    callback_path = r.get("callback_path", str, f"/callback/{name}")
    if not callback_path.startswith("/"):
        r.fail("callback_path", "must be a path starting with '/'")
    endpoints = r.get("endpoints", dict, {})
    for key in endpoints:
        if key not in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                       "end_session_endpoint"):
            r.fail("endpoints", f"unknown endpoint {key!r}")
    scopes = r.strings("scopes", ("openid",))
    if "openid" not in scopes:
        r.fail("scopes", "must include openid")
    return OidcUpstreamSettings(
        issuer=issuer, client_id=client_id, client_secret=secret, scopes=scopes, callback_path=callback_path,
        discovery_url=r.get("discovery_url", str, issuer + "/.well-known/openid-configuration"),
        token_endpoint_auth_method=method, id_token_signing_algs=algorithms,
        issuer_aliases=r.strings("issuer_aliases"), issuer_template=r.get("issuer_template", str, None),
        use_nonce=r.get("use_nonce", bool, True), use_pkce=r.get("use_pkce", bool, True),
        endpoints=endpoints, introspection_endpoint=r.get("introspection_endpoint", str, None),
        introspect_at_sign_in=r.get("introspect_at_sign_in", bool, False),
        subject_claims=r.strings("subject_claims", ("sub",)), claim_mapping=r.get("claim_mapping", dict, {}),
        passthrough_claims=r.strings("passthrough_claims"), fetch_userinfo=r.get("fetch_userinfo", bool, True),
        authorize_params=r.get("authorize_params", dict, {}), forward_prompt=r.get("forward_prompt", bool, True),
        timeout=float(r.get("timeout", (int, float), 10)),
        sign_in_deadline=positive_seconds(r, "sign_in_deadline", 15),
        acr=r.get("acr", str, None), refresh=r.get("refresh", bool, True), logout=r.get("logout", bool, True),
    )


def parse_local_user(parent: _Reader, index: int, entry: dict) -> LocalUser:
    r = _Reader(parent.source, entry, parent.key(f"users[{index}]"))
    password_hash = r.get("password_hash", str, required=True)
    if not password_hash.startswith("$argon2"):
        r.fail("password_hash", "must be an argon2 hash (make one with `op-proxy hash-password`)")
    return LocalUser(
        username=r.get("username", str, required=True),
        password_hash=password_hash,
        claims=r.get("claims", dict, {}),
    )
