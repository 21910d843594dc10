"""Rules a client registration must satisfy, shared by the config file, the CLI and the admin panel."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from op_proxy.i18n import N_

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
MODES = ("oidc", "query_token", "php_session")
PHP_SAVE_HANDLERS = ("files", "redis")
ACCESS_TOKEN_FORMATS = ("jwt", "opaque")  # RFC 9068 JWT (the default), or a reference checked by introspection
SUBJECT_TYPES = ("public", "pairwise")
# What a client_id may be: it travels in URLs and forms (/admin/clients/<client_id>, ?client_id=).
CLIENT_ID = re.compile(r"[A-Za-z0-9._~@:-]{1,128}")
CLIENT_LIFETIMES = ("access_token_lifetime", "id_token_lifetime", "refresh_token_lifetime")


def is_loopback_host(host: str | None) -> bool:
    """Where plain http is tolerated: this machine (RFC 8252 §7.3; ``*.localhost`` per RFC 6761)."""
    return host in ("127.0.0.1", "localhost", "::1") or bool(host and host.endswith(".localhost"))


class ClientValidationError(ValueError):
    """``field``: the setting that is wrong (the config key, the panel's form field). ``message`` is
    English with ``%(name)s`` places filled from ``params``: the config file and the CLI show ``reason``
    as it is, the admin panel translates ``message`` (every one is marked ``N_`` for messages.po)."""

    def __init__(self, field: str, message: str, **params):
        self.field, self.message, self.params = field, message, params
        self.reason = message % params if params else message
        super().__init__(f"{field}: {self.reason}")


def validate_redirect_uri(uri: str, field: str) -> None:
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") and "." not in parts.scheme:
        # Private-use schemes (RFC 8252 §7.1) must look like reversed domain names.
        raise ClientValidationError(field, N_("'%(uri)s' must start with https:// (http:// only for 127.0.0.1 or "
                                              "localhost), or be an app's own scheme such as com.example.app:/cb"),
                                    uri=uri)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ClientValidationError(field, N_("'%(uri)s': plain http is only allowed on loopback; use https://"),
                                    uri=uri)
    if parts.fragment or "#" in uri:
        raise ClientValidationError(field, N_("'%(uri)s' must not contain a fragment (#...) (RFC 6749 §3.1.2)"),
                                    uri=uri)
    if parts.scheme in ("http", "https") and not parts.netloc:
        raise ClientValidationError(field, N_("'%(uri)s' has no host name"), uri=uri)


def validate_php_session(settings: dict | None) -> None:
    if not settings:
        raise ClientValidationError("php_session", N_("a php_session client needs its php_session settings"))
    if settings.get("save_handler", "files") not in PHP_SAVE_HANDLERS:
        raise ClientValidationError("php_session", N_("save_handler: one of %(choices)s"),
                                    choices=", ".join(PHP_SAVE_HANDLERS))
    if not settings.get("save_path"):
        raise ClientValidationError("php_session", N_("save_path: the app's session.save_path is required"))
    if settings.get("cookie_samesite", "Lax") not in ("Lax", "Strict", "None"):
        raise ClientValidationError("php_session", N_("cookie_samesite: Lax, Strict or None"))
    if settings.get("save_handler", "files") == "files":
        from op_proxy.legacy.php_session import file_group, file_mode

        for key, check in (("file_mode", file_mode), ("file_group", file_group)):
            try:
                check(settings.get(key))
            except ValueError as exc:
                raise ClientValidationError("php_session", f"{key}: {exc}") from None


def check_php_save_path(settings: dict) -> None:
    """Where the app's PHP keeps ``sess_*`` files must be a folder op-proxy can write into, or every
    sign-in would end in an error page: checked when an admin saves the app, on the machine that will
    write there."""
    if settings.get("save_handler", "files") != "files":
        return
    path = settings["save_path"].rsplit(";", 1)[-1]  # PHP allows "N;/path" and "N;MODE;/path"
    if not os.path.isdir(path):
        raise ClientValidationError("php_session", N_("save_path: the folder %(path)s does not exist on this "
                                                      "server; create it or give the app's session.save_path"),
                                    path=path)
    if not os.access(path, os.W_OK | os.X_OK):
        raise ClientValidationError("php_session", N_("save_path: op-proxy may not write into %(path)s; give "
                                                      "its user write access (the group PHP shares)"), path=path)


def validate_lifetimes(fields: dict, limits=None) -> None:
    """A client may shorten the server's token lifetimes (``limits``: its [tokens] settings), never
    lengthen them: a signing key is retired once the longest-lived token it signed has expired."""
    for name in CLIENT_LIFETIMES:
        value = fields.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ClientValidationError(name, N_("must be a positive number of seconds"))
        if limits is not None and value > getattr(limits, name):
            raise ClientValidationError(name, N_("at most %(seconds)d seconds (the server's tokens.%(name)s)"),
                                        seconds=getattr(limits, name), name=name)


def validate_client_fields(fields: dict, limits=None) -> None:
    """``limits``: the server's [tokens] settings, which a client's own lifetimes may not exceed."""
    if not fields.get("client_id"):
        raise ClientValidationError("client_id", N_("is required"))
    if not CLIENT_ID.fullmatch(fields["client_id"]):
        raise ClientValidationError("client_id", N_("letters, digits and . _ ~ @ : - only (128 at most)"))
    mode = fields.get("mode", "oidc")
    if mode not in MODES:
        raise ClientValidationError("mode", N_("one of %(choices)s"), choices=", ".join(MODES))
    if mode == "php_session":
        validate_php_session(fields.get("php_session"))
    method = fields.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise ClientValidationError("token_endpoint_auth_method", N_("one of %(choices)s"),
                                    choices=", ".join(AUTH_METHODS))
    if method in ("client_secret_basic", "client_secret_post") and not fields.get("client_secret_hash"):
        raise ClientValidationError(
            "client_secret_hash", N_("%(method)s needs a client secret (client_secret_hash or client_secret_env)"),
            method=method)
    if method == "none" and fields.get("client_secret_hash"):
        raise ClientValidationError("client_secret_hash", N_("a public client (method none) has no secret"))
    if method == "private_key_jwt" and not fields.get("jwks"):
        raise ClientValidationError("jwks", N_("private_key_jwt needs the client's public keys (jwks)"))
    if not fields.get("redirect_uris"):
        raise ClientValidationError("redirect_uris", N_("at least one redirect URI is required"))
    for uri in fields["redirect_uris"]:
        validate_redirect_uri(uri, "redirect_uris")
    for uri in fields.get("post_logout_redirect_uris", ()):
        validate_redirect_uri(uri, "post_logout_redirect_uris")
    if fields.get("user_handler_endpoint"):
        endpoint = urlsplit(fields["user_handler_endpoint"])
        if endpoint.scheme != "https" and not (endpoint.scheme == "http" and is_loopback_host(endpoint.hostname)):
            raise ClientValidationError("user_handler_endpoint", N_("must be https (plain http only on loopback)"))
        secret = fields.get("user_handler_secret")
        if not secret:
            raise ClientValidationError("user_handler_secret",
                                        N_("a user handler needs its API secret (X-API-SECRET)"))
        if not (secret.isascii() and secret.isprintable()):
            raise ClientValidationError("user_handler_secret",
                                        N_("must be printable ASCII (it travels in an HTTP header)"))
    validate_lifetimes(fields, limits)
    if fields.get("access_token_format", "jwt") not in ACCESS_TOKEN_FORMATS:
        raise ClientValidationError("access_token_format", N_("must be 'jwt' or 'opaque'"))
    if fields.get("subject_type", "public") not in SUBJECT_TYPES:
        raise ClientValidationError("subject_type", N_("must be 'public' or 'pairwise'"))
    hosts = {urlsplit(uri).hostname for uri in fields["redirect_uris"]}
    if fields.get("subject_type") == "pairwise" and len(hosts) > 1:
        raise ClientValidationError("redirect_uris", N_("a pairwise client's redirect URIs must share one host "
                                                        "(OIDC Core §8.1)"))
