"""Applications: list and search, register (the secret shown once), edit every setting, rotate
secrets, disable, delete. Clients from the config file are shown read-only: the file wins."""

from __future__ import annotations

import json
import time

from quart import redirect, request
from sqlalchemy import or_, select

from admin.auth import admin_page, record_admin_action
from op_proxy.claims.release import DEFAULT_CLIENT_SCOPES, SUPPORTED_SCOPES
from op_proxy.clients.registry import (
    ChangedSinceRead,
    ClientExists,
    NoSuchSecret,
    create_client,
    new_client_secret,
    remove_client,
    revoke_client_grants,
    rotate_secret,
    stored_client_secret,
)
from op_proxy.clients.validation import (
    AUTH_METHODS,
    CLIENT_ID,
    CLIENT_LIFETIMES,
    MODES,
    ClientValidationError,
    check_php_save_path,
    validate_client_fields,
)
from op_proxy.errors import PageError
from op_proxy.i18n import N_
from op_proxy.i18n import gettext as _
from op_proxy.security import random_token, seal
from op_proxy.services import services
from op_proxy.storage.models import Client
from op_proxy.web import render_page

PHP_SESSION_KEYS = ("save_handler", "save_path", "file_mode", "file_group", "cookie_name", "cookie_domain",
                    "cookie_path")
LIFETIME_LABELS = {
    "access_token_lifetime": N_("Access token lifetime"),
    "id_token_lifetime": N_("ID token lifetime"),
    "refresh_token_lifetime": N_("Refresh token lifetime"),
}
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
# What a refused setting is called on the form, and which input gets the mark (by its name).
FIELD_LABELS = {
    "client_id": N_("Client ID"), "name": N_("Name"), "mode": N_("Mode"),
    "token_endpoint_auth_method": N_("Client authentication"), "client_secret_hash": N_("Client authentication"),
    "subject_type": N_("Subject (sub)"), "access_token_format": N_("Access token format"),
    "redirect_uris": N_("Redirect URIs"),
    "post_logout_redirect_uris": N_("Post-logout redirect URIs"), "jwks": N_("Public keys (JWKS)"),
    "user_handler_endpoint": N_("User handler endpoint"), "user_handler_secret": N_("User handler endpoint"),
    "legacy_token_lifetime": N_("?token= lifetime"), "legacy_use_global_key": N_("Old gateway's global key"),
    "php_session": N_("PHP session"), **LIFETIME_LABELS,
}
FIELD_INPUTS = {"client_secret_hash": "token_endpoint_auth_method", "user_handler_secret": "user_handler_endpoint",
                "php_session": "php_save_path"}


class FormError:
    """A refused form, said in the page's language with the field's own label, and the input to mark."""

    def __init__(self, error: ClientValidationError | None = None, *, message: str | None = None):
        self.input = FIELD_INPUTS.get(error.field, error.field) if error else None
        if error is None:
            self.text = message
        else:
            reason = _(error.message, **error.params) if error.params else _(error.message)
            self.text = f"{_(FIELD_LABELS[error.field])}: {reason}" if error.field in FIELD_LABELS else reason

    def __str__(self) -> str:
        return self.text


def seconds(form, name: str, default: int | None) -> int | None:
    text = form.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ClientValidationError(name, N_("must be a number of seconds")) from None


def lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def form_fields(form, *, client_id: str | None = None) -> dict:
    """The submitted form as client fields (validated by the same rules as the config and CLI)."""
    mode = form.get("mode", "oidc")
    fields = {
        "client_id": client_id or form.get("client_id", "").strip(),
        "name": form.get("name", "").strip(),
        "mode": mode,
        # A legacy app never calls the token endpoint: it has no client secret to be shown or kept.
        "token_endpoint_auth_method": "none" if mode in ("query_token", "php_session")
        else form.get("token_endpoint_auth_method", "client_secret_basic"),
        "redirect_uris": lines(form.get("redirect_uris")),
        "post_logout_redirect_uris": lines(form.get("post_logout_redirect_uris")),
        "allowed_scopes": form.getlist("allowed_scopes"),
        "allowed_upstreams": form.getlist("allowed_upstreams"),
        "require_consent": form.get("require_consent") == "on",
        "require_pkce": form.get("require_pkce") == "on",
        "subject_type": form.get("subject_type", "public"),
        "access_token_format": form.get("access_token_format", "jwt"),
        "user_handler_endpoint": form.get("user_handler_endpoint", "").strip() or None,
        "legacy_use_global_key": form.get("legacy_use_global_key") == "on",
    }
    fields["legacy_token_lifetime"] = seconds(form, "legacy_token_lifetime", 3600)
    for name in CLIENT_LIFETIMES:
        fields[name] = seconds(form, name, None)
    if fields["mode"] == "php_session":
        fields["php_session"] = {key: form.get(f"php_{key}", "").strip() for key in PHP_SESSION_KEYS
                                 if form.get(f"php_{key}", "").strip()}
    if form.get("jwks", "").strip():
        try:
            fields["jwks"] = json.loads(form["jwks"])
        except ValueError:
            raise ClientValidationError("jwks", N_("is not valid JSON")) from None
    if not fields["client_id"]:
        raise ClientValidationError("client_id", N_("is required"))
    return fields


def check_what_signing_in_needs(fields: dict) -> None:
    """What the rules of a registration cannot see but a sign-in needs on this server: a global key
    to sign with, a session folder to write into. Refused at save time, not with a 500 at sign-in."""
    if fields["mode"] == "query_token" and fields["legacy_use_global_key"] \
            and not services().settings.legacy.global_key:
        raise ClientValidationError("legacy_use_global_key", N_(
            "this server has no global key ([legacy] global_key_env is not set); leave it unticked and "
            "op-proxy makes the app its own HS256 key"))
    if fields["mode"] == "php_session":
        check_php_save_path(fields["php_session"])


def form_data(client: Client | None, values) -> dict:
    """What the form shows: what was just submitted (nothing typed is lost), else the client."""
    if values:
        data = {key: values.get(key, "") for key in values}
        data["allowed_scopes"] = values.getlist("allowed_scopes")
        data["allowed_upstreams"] = values.getlist("allowed_upstreams")
        for flag in ("require_consent", "require_pkce", "legacy_use_global_key"):
            data[flag] = values.get(flag) == "on"
        return data
    if client is None:
        return {"mode": "oidc", "token_endpoint_auth_method": "client_secret_basic", "subject_type": "public",
                "access_token_format": "jwt",
                "allowed_scopes": list(DEFAULT_CLIENT_SCOPES), "allowed_upstreams": [],
                "legacy_token_lifetime": 3600}
    data = {name: getattr(client, name) for name in (
        "client_id", "name", "mode", "token_endpoint_auth_method", "allowed_upstreams", "require_consent",
        "require_pkce", "subject_type", "user_handler_endpoint", "legacy_use_global_key", "legacy_token_lifetime",
        *CLIENT_LIFETIMES)}
    data["access_token_format"] = client.access_token_format or "jwt"
    data["allowed_scopes"] = client.allowed_scopes or list(DEFAULT_CLIENT_SCOPES)
    data["redirect_uris"] = "\n".join(client.redirect_uris)
    data["post_logout_redirect_uris"] = "\n".join(client.post_logout_redirect_uris)
    data["jwks"] = json.dumps(client.jwks, indent=1) if client.jwks else ""
    data["version"] = client.updated_at  # sent back with the form: a save over another admin's is refused
    for key in PHP_SESSION_KEYS:
        value = (client.php_session or {}).get(key, "")
        data[f"php_{key}"] = f"0{value:o}" if key == "file_mode" and isinstance(value, int) else value
    return data


async def form_page(client=None, *, values=None, error: FormError | None = None, status=200):
    svc = services()
    return await render_page("admin/client_form.html", status, client=client, data=form_data(client, values),
                             error=error, error_input=error.input if error else None,
                             modes=MODES, auth_methods=AUTH_METHODS, scopes=SUPPORTED_SCOPES,
                             lifetime_fields=[(name, _(label)) for name, label in LIFETIME_LABELS.items()],
                             server_lifetimes={name: getattr(svc.settings.tokens, name) for name in CLIENT_LIFETIMES},
                             default_scopes=DEFAULT_CLIENT_SCOPES, upstreams=list(svc.connectors.values()))


def secret_label(client: Client) -> str:
    return _("HS256 key for ?token=") if client.mode == "query_token" else _("Client secret")


API_SECRET_LABEL = N_("User handler API secret (X-API-SECRET)")


async def secret_page(client: Client, secrets: list[tuple[str, str]]):
    """Each new secret (label, value) shown this once; op-proxy keeps only what it needs to check it."""
    return await render_page("admin/client_secret.html", client=client, secrets=secrets)


async def load(client_id: str) -> Client:
    async with services().db.session() as session:
        client = await session.get(Client, client_id)
    if client is None:
        raise PageError(_("Application not found"), _("There is no application %(id)s.", id=client_id), 404)
    return client


def editable(client: Client) -> None:
    if client.source == "config":
        raise PageError(_("Defined in the config file"),
                        _("This application is defined in the config file; change it there."), 409)


def apply_form(row: Client, fields: dict, new_secrets: list) -> None:
    """Write the checked form onto the client row; each secret it now needs is made and added to
    ``new_secrets`` (label, value) to be shown once."""
    for name in ("name", "mode", "token_endpoint_auth_method", "redirect_uris", "post_logout_redirect_uris",
                 "allowed_scopes", "allowed_upstreams", "require_consent", "require_pkce", "subject_type",
                 "access_token_format", "user_handler_endpoint", "legacy_use_global_key", "legacy_token_lifetime",
                 *CLIENT_LIFETIMES):
        setattr(row, name, fields[name])
    row.php_session = fields.get("php_session")
    row.jwks = fields.get("jwks", row.jwks)
    if fields["client_secret_hash"] == "pending":  # now needs a secret it never had
        new_secret = new_client_secret()
        row.secret_hash = stored_client_secret(new_secret)
        new_secrets.append((_("Client secret"), new_secret))
    elif fields["client_secret_hash"] is None:
        row.secret_hash = None
    if row.mode == "query_token" and not row.legacy_use_global_key and not row.legacy_key:
        # Switched to ?token= (or away from the global key): it signs with a key of its own.
        legacy_key = new_client_secret()
        row.legacy_key = seal(services().keyring.data_key(), legacy_key)
        new_secrets.append((_("HS256 key for ?token="), legacy_key))
    if fields["user_handler_secret"] == "pending":  # a user handler was added: it needs its secret
        api_secret = random_token(24)
        row.user_handler_secret = seal(services().keyring.data_key(), api_secret)
        new_secrets.append((_(API_SECRET_LABEL), api_secret))
    row.updated_at = max(int(time.time()), row.updated_at + 1)  # every save a new version


def attach(bp) -> None:
    @bp.route("/clients")
    @admin_page()
    async def clients_list():
        query = request.args.get("q", "").strip()
        statement = select(Client).order_by(Client.client_id)
        if query:
            like = f"%{query}%"
            statement = statement.where(or_(Client.client_id.like(like), Client.name.like(like)))
        async with services().db.session() as session:
            found = list((await session.scalars(statement)).all())
        # Only a name that could be a client_id: the link is a URL anyone could send an admin.
        deleted = request.args.get("deleted", "")
        return await render_page("admin/clients.html", clients=found, query=query,
                                 deleted=deleted if CLIENT_ID.fullmatch(deleted) else None)

    @bp.route("/clients/new", methods=["GET", "POST"])
    @admin_page()
    async def client_new():
        if request.method == "GET":
            return await form_page()
        form = await request.form
        svc = services()
        try:
            fields = form_fields(form)
            api_secret = random_token(24) if fields["user_handler_endpoint"] else None
            fields["user_handler_secret"] = api_secret
            validate_client_fields({**fields, "client_secret_hash": "checked by create_client"
                                    if fields["token_endpoint_auth_method"] in SECRET_METHODS else None},
                                   svc.settings.tokens)
            check_what_signing_in_needs(fields)
            client, secret = await create_client(svc.db, fields, svc.keyring.data_key(), svc.settings.tokens)
        except ClientValidationError as exc:
            return await form_page(values=form, error=FormError(exc), status=400)
        except ClientExists:
            return await form_page(values=form, error=FormError(
                message=_("An application with this client_id already exists: choose another client_id.")),
                status=400)
        await record_admin_action("client_created", client_id=client.client_id)
        secrets = [(secret_label(client), secret)] if secret else []
        if api_secret:
            secrets.append((_(API_SECRET_LABEL), api_secret))
        if secrets:
            return await secret_page(client, secrets)
        return redirect(f"/admin/clients/{client.client_id}", 303)

    @bp.route("/clients/<client_id>", methods=["GET", "POST"])
    @admin_page()
    async def client_edit(client_id: str):
        client = await load(client_id)
        if request.method == "GET":
            return await form_page(client)
        editable(client)
        form = await request.form
        try:
            fields = form_fields(form, client_id=client_id)
            # A public (or private_key_jwt) app keeps no secret; one that now needs a secret gets a new one.
            fields["client_secret_hash"] = (client.secret_hash or "pending") \
                if fields["token_endpoint_auth_method"] in SECRET_METHODS else None
            fields["user_handler_secret"] = client.user_handler_secret or (
                "pending" if fields["user_handler_endpoint"] else None)
            validate_client_fields(fields, services().settings.tokens)
            check_what_signing_in_needs(fields)
        except ClientValidationError as exc:
            return await form_page(client, values=form, error=FormError(exc), status=400)
        new_secrets = []
        async with services().db.transaction() as session:
            row = await session.get(Client, client_id)
            # Another admin saved (or rotated, or disabled) since this form was opened: saving now would
            # silently undo their change. Nothing is written; the admin sees what is saved now.
            stale = row is None or form.get("version", "") != str(row.updated_at)
            if not stale:
                apply_form(row, fields, new_secrets)
        if stale:
            return await form_page(await load(client_id), error=FormError(message=_(
                "Another admin changed this application after you opened the form, so nothing was saved. "
                "Here is what is saved now: make your change again.")), status=409)
        await record_admin_action("client_updated", client_id=client_id)
        if new_secrets:
            return await secret_page(await load(client_id), new_secrets)
        return redirect(f"/admin/clients/{client_id}?saved=1", 303)

    @bp.route("/clients/<client_id>/rotate/<what>", methods=["POST"])
    @admin_page()
    async def client_rotate(client_id: str, what: str):
        editable(await load(client_id))
        svc = services()
        version = (await request.form).get("version", "")
        try:
            secret = await rotate_secret(svc.db, client_id, what, svc.keyring.data_key(), version=version)
        except ChangedSinceRead:
            # A resubmitted form (reload, back button) or another admin's change since the page was
            # opened: rotating again would silently replace the secret the admin has just copied.
            raise PageError(_("Nothing was rotated"),
                            _("This application changed after the page was opened (or the form was sent "
                              "twice). Open the application again to rotate its secret."), 409) from None
        except NoSuchSecret:
            raise PageError(_("Nothing to rotate"), _("This application has no such secret."), 400) from None
        label = {"secret": _("Client secret"), "legacy-key": _("HS256 key for ?token="),
                 "api-secret": _(API_SECRET_LABEL)}[what]
        await record_admin_action("client_secret_rotated", client_id=client_id, secret=what)
        return await secret_page(await load(client_id), [(label, secret)])

    @bp.route("/clients/<client_id>/enabled", methods=["POST"])
    @admin_page()
    async def client_toggle(client_id: str):
        editable(await load(client_id))
        enabled = (await request.form).get("enabled") == "1"
        async with services().db.transaction() as session:
            row = await session.get(Client, client_id)
            row.enabled, row.updated_at = enabled, max(int(time.time()), row.updated_at + 1)
            if not enabled:  # a disabled app's tokens end now, not when they expire (RFC 9700 §4.14)
                await revoke_client_grants(session, client_id, "client_disabled")
        await record_admin_action("client_enabled" if enabled else "client_disabled", client_id=client_id)
        return redirect(f"/admin/clients/{client_id}", 303)

    @bp.route("/clients/<client_id>/delete", methods=["POST"])
    @admin_page()
    async def client_delete(client_id: str):
        editable(await load(client_id))
        await remove_client(services().db, client_id)
        await record_admin_action("client_deleted", client_id=client_id)
        return redirect("/admin/clients?deleted=" + client_id, 303)

