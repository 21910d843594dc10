"""Rules a client registration must satisfy, shared by the config file, the CLI and the admin panel."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
MODES = ("oidc", "query_token", "php_session")
PHP_SAVE_HANDLERS = ("files", "redis")
SUBJECT_TYPES = ("public", "pairwise")
# What a client_id may be: it travels in URLs and forms (/admin/clients/<client_id>, ?client_id=).
CLIENT_ID = re.compile(r"[A-Za-z0-9._~@:-]{1,128}")
CLIENT_LIFETIMES = ("access_token_lifetime", "id_token_lifetime", "refresh_token_lifetime")


def is_loopback_host(host: str | None) -> bool:
    """Where plain http is tolerated: this machine (RFC 8252 §7.3; ``*.localhost`` per RFC 6761)."""
    return host in ("127.0.0.1", "localhost", "::1") or bool(host and host.endswith(".localhost"))


class ClientValidationError(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def validate_redirect_uri(uri: str, field: str) -> None:
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") and "." not in parts.scheme:
        # Private-use schemes (RFC 8252 §7.1) must look like reversed domain names.
        raise ClientValidationError(field, f"{uri!r} must be https, loopback http or a private scheme")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ClientValidationError(field, f"{uri!r}: plain http is only allowed on loopback")
    if parts.fragment or "#" in uri:
        raise ClientValidationError(field, f"{uri!r} must not contain a fragment (RFC 6749 §3.1.2)")
    if parts.scheme in ("http", "https") and not parts.netloc:
        raise ClientValidationError(field, f"{uri!r} has no host")


def validate_php_session(settings: dict | None) -> None:
    if not settings:
        raise ClientValidationError("php_session", "a php_session client needs its php_session settings")
    if settings.get("save_handler", "files") not in PHP_SAVE_HANDLERS:
        raise ClientValidationError("php_session", f"save_handler: one of {', '.join(PHP_SAVE_HANDLERS)}")
    if not settings.get("save_path"):
        raise ClientValidationError("php_session", "save_path: the app's session.save_path is required")
    if settings.get("cookie_samesite", "Lax") not in ("Lax", "Strict", "None"):
        raise ClientValidationError("php_session", "cookie_samesite: Lax, Strict or None")
    if settings.get("save_handler", "files") == "files":
        from op_proxy.legacy.php_session import file_group, file_mode

        for key, check in (("file_mode", file_mode), ("file_group", file_group)):
            try:
                check(settings.get(key))
            except ValueError as exc:
                raise ClientValidationError("php_session", f"{key}: {exc}") from None


def validate_lifetimes(fields: dict, limits=None) -> None:
    """A client may shorten the server's token lifetimes (``limits``: its [tokens] settings), never
    lengthen them: a signing key is retired once the longest-lived token it signed has expired."""
    for name in CLIENT_LIFETIMES:
        value = fields.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ClientValidationError(name, "must be a positive number of seconds")
        if limits is not None and value > getattr(limits, name):
            raise ClientValidationError(name, f"at most {getattr(limits, name)} seconds (the server's tokens.{name})")


def validate_client_fields(fields: dict, limits=None) -> None:
    """``limits``: the server's [tokens] settings, which a client's own lifetimes may not exceed."""
    if not fields.get("client_id"):
        raise ClientValidationError("client_id", "is required")
    if not CLIENT_ID.fullmatch(fields["client_id"]):
        raise ClientValidationError("client_id", "letters, digits and . _ ~ @ : - only (128 at most)")
    mode = fields.get("mode", "oidc")
    if mode not in MODES:
        raise ClientValidationError("mode", f"one of {', '.join(MODES)}")
    if mode == "php_session":
        validate_php_session(fields.get("php_session"))
    method = fields.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise ClientValidationError("token_endpoint_auth_method", f"one of {', '.join(AUTH_METHODS)}")
    if method in ("client_secret_basic", "client_secret_post") and not fields.get("client_secret_hash"):
        raise ClientValidationError(
            "client_secret_hash", f"{method} needs a client secret (client_secret_hash or client_secret_env)"
        )
    if method == "none" and fields.get("client_secret_hash"):
        raise ClientValidationError("client_secret_hash", "a public client (method none) has no secret")
    if method == "private_key_jwt" and not fields.get("jwks"):
        raise ClientValidationError("jwks", "private_key_jwt needs the client's public keys (jwks)")
    if not fields.get("redirect_uris"):
        raise ClientValidationError("redirect_uris", "at least one redirect URI is required")
    for uri in fields["redirect_uris"]:
        validate_redirect_uri(uri, "redirect_uris")
    for uri in fields.get("post_logout_redirect_uris", ()):
        validate_redirect_uri(uri, "post_logout_redirect_uris")
    if fields.get("user_handler_endpoint"):
        endpoint = urlsplit(fields["user_handler_endpoint"])
        if endpoint.scheme != "https" and not (endpoint.scheme == "http" and is_loopback_host(endpoint.hostname)):
            raise ClientValidationError("user_handler_endpoint", "must be https (plain http only on loopback)")
        secret = fields.get("user_handler_secret")
        if not secret:
            raise ClientValidationError("user_handler_secret", "a user handler needs its API secret (X-API-SECRET)")
        if not (secret.isascii() and secret.isprintable()):
            raise ClientValidationError("user_handler_secret", "must be printable ASCII (it travels in an HTTP header)")
    validate_lifetimes(fields, limits)
    if fields.get("subject_type", "public") not in SUBJECT_TYPES:
        raise ClientValidationError("subject_type", "must be 'public' or 'pairwise'")
    hosts = {urlsplit(uri).hostname for uri in fields["redirect_uris"]}
    if fields.get("subject_type") == "pairwise" and len(hosts) > 1:
        raise ClientValidationError("redirect_uris", "a pairwise client's redirect URIs must share one host "
                                                     "(OIDC Core §8.1)")
