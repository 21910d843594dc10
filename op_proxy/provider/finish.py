"""The OIDC front door's end of a sign-in: consent if needed, then a code to the redirect URI."""

from __future__ import annotations

import time

from quart import Blueprint, redirect, request
from sqlalchemy import select

from op_proxy import audit
from op_proxy.claims.release import requested_claim_names, scopes_for_claims
from op_proxy.claims.subjects import subject_for
from op_proxy.errors import PageError, RedirectableError
from op_proxy.i18n import N_
from op_proxy.i18n import gettext as _
from op_proxy.provider import responses
from op_proxy.security import random_token, token_digest, unseal
from op_proxy.services import Services, services
from op_proxy.signin import flow, user_handler
from op_proxy.signin.sessions import account_by_sub, current_session
from op_proxy.storage.models import (
    AuthorizationCode,
    Client,
    Consent,
    Grant,
    PendingLogin,
    SsoSession,
)
from op_proxy.web import client_ip, render_page, use_locale

blueprint = Blueprint("consent", __name__)

SCOPE_LABELS = {
    "openid": N_("Know who you are"),
    "profile": N_("Your name and basic profile"),
    "email": N_("Your e-mail address"),
    "address": N_("Your address"),
    "phone": N_("Your phone number"),
    "org": N_("Your department, position and campus"),
    "groups": N_("The groups you belong to"),
    "thaid": N_("Your national ID card details (including your national ID number)"),
}


@blueprint.app_template_global()
def scope_label(scope: str) -> str:
    return _(SCOPE_LABELS[scope]) if scope in SCOPE_LABELS else scope


def scopes_to_consent(client: Client, params: dict) -> list[str]:
    """The granted scopes plus the scope of each claim asked for one by one (``claims``, OIDC Core
    §5.5): those claims are released too, so the person's consent must cover them."""
    by_claim = scopes_for_claims(requested_claim_names(params.get("claims")), client.allowed_scopes)
    return list(dict.fromkeys([*params["scope"], *by_claim]))


async def needs_consent(svc: Services, client: Client, params: dict, sub: str) -> bool:
    if "consent" in params["prompt"]:
        return True
    if not client.require_consent:
        return False
    async with svc.db.session() as session:
        consent = await session.scalar(select(Consent).where(Consent.client_id == client.client_id,
                                                             Consent.sub == sub))
    return consent is None or not set(scopes_to_consent(client, params)) <= set(consent.scopes)


def expected_subjects(hinted_sub: str | None, claims: dict | None) -> list:
    """Whom the application says must be signed in: the subject of its id_token_hint (OIDC Core
    §3.1.2.1) and a ``sub`` asked for with a value in the claims parameter (§5.5.1)."""
    expected = [hinted_sub] if hinted_sub is not None else []
    for member in (claims or {}).values():
        sub = member.get("sub")
        if isinstance(sub, dict) and "value" in sub:
            expected.append(sub["value"])
    return expected


def is_expected_person(svc: Services, client: Client, params: dict, sso: SsoSession) -> bool:
    subject = subject_for(sso.sub, client, svc.keyring.subject_salt())
    return all(expected == subject for expected in expected_subjects(params.get("hinted_sub"), params.get("claims")))


async def error_to_client(svc: Services, params: dict, error: str, description: str):
    exc = RedirectableError(error, description)
    return await responses.error_to_client(svc, params["redirect_uri"], params["response_mode"], params["state"], exc)


@flow.front_door("oidc")
async def finish_oidc(svc: Services, pending: PendingLogin, login_id: str, sso: SsoSession):
    params = pending.params
    async with svc.db.session() as session:
        client = await session.get(Client, pending.client_id)
    if client is None or not client.enabled:
        raise PageError(_("Unknown application"), _("This application has been removed or disabled."))
    if not is_expected_person(svc, client, params, sso):
        # Someone else signed in than the application asked for: it must not get a code for them.
        return await error_to_client(svc, params, "login_required",
                                     "the signed-in person is not the one the application asked for")
    if await needs_consent(svc, client, params, sso.sub):
        if "none" in params["prompt"]:
            return await error_to_client(svc, params, "consent_required",
                                         "the person has not consented to this client")
        return redirect(f"/consent/{login_id}", 303)
    return await issue_code(svc, pending, login_id, sso)


async def ask_user_handler(svc: Services, client: Client, sso: SsoSession, scopes: list[str]) -> dict | None:
    if not client.user_handler_endpoint:
        return None
    account = await account_by_sub(svc.db, sso.sub)
    try:
        sub = subject_for(sso.sub, client, svc.keyring.subject_salt())
        api_secret = unseal(svc.keyring.data_key(), client.user_handler_secret)
        answer = await user_handler.ask_app(svc.http, client, api_secret, account.profile, sub, scopes)
    except user_handler.UserHandlerFailed as failure:
        await audit.record(svc.db, "user_handler", outcome="failure", client_id=client.client_id, sub=sso.sub,
                           ip=client_ip(), reason=failure.reason)
        raise PageError(_("The application could not sign you in"),
                        _("%(app)s did not accept the sign-in (its user service answered: %(reason)s). Try again "
                          "later or contact the application's administrator.", app=client.name,
                          reason=failure.reason), 502) from None
    await audit.record(svc.db, "user_handler", client_id=client.client_id, sub=sso.sub, ip=client_ip(),
                       role=answer.get("role"))
    return answer


async def issue_code(svc: Services, pending: PendingLogin, login_id: str, sso: SsoSession):
    params = pending.params
    async with svc.db.session() as session:
        client = await session.get(Client, pending.client_id)
    app_user = await ask_user_handler(svc, client, sso, params["scope"])
    if not await flow.mark_finished(svc, login_id):
        raise PageError(_("Sign-in already finished"),
                        _("This sign-in has already been completed. Go back to the application."))
    now = int(time.time())
    code = random_token(32)
    grant = Grant(id=random_token(16), client_id=pending.client_id, sub=sso.sub, sid=sso.sid,
                  subject=subject_for(sso.sub, client, svc.keyring.subject_salt()),
                  scope=" ".join(params["scope"]), claims=params.get("claims"), auth_time=sso.auth_time,
                  acr=sso.acr, amr=sso.amr, app_user=app_user, created_at=now)
    async with svc.db.transaction() as session:
        session.add(grant)
        session.add(AuthorizationCode(
            code_digest=token_digest(code), grant_id=grant.id, client_id=pending.client_id,
            redirect_uri=params["redirect_uri"], code_challenge=params.get("code_challenge"),
            code_challenge_method=params.get("code_challenge_method"), nonce=params.get("nonce"),
            expires_at=now + svc.settings.tokens.authorization_code_lifetime,
        ))
    await audit.record(svc.db, "authorization_code_issued", client_id=pending.client_id, sub=sso.sub,
                       upstream=sso.upstream, ip=client_ip())
    return await responses.to_client(svc, params["redirect_uri"], params["response_mode"],
                                     {"code": code, "state": params["state"]})


@blueprint.route("/consent/<login_id>", methods=["GET", "POST"])
async def consent(login_id: str):
    svc = services()
    pending = await flow.load(svc, login_id)
    use_locale(pending.params.get("ui_locales"))
    sso = await current_session(svc.db)
    if sso is None:
        return flow.chooser_redirect(login_id)
    async with svc.db.session() as session:
        client = await session.get(Client, pending.client_id)
    params = pending.params
    if request.method == "GET":
        return await render_page("consent.html", client=client, scopes=scopes_to_consent(client, params),
                                 login_id=login_id)
    form = await request.form
    if form.get("decision") != "allow":
        await flow.mark_finished(svc, login_id)
        await audit.record(svc.db, "consent_denied", outcome="failure", client_id=client.client_id,
                           sub=sso.sub, ip=client_ip())
        return await error_to_client(svc, params, "access_denied", "the person did not allow this application")
    async with svc.db.transaction() as session:
        existing = await session.get(Consent, (client.client_id, sso.sub))
        scopes = sorted(set(scopes_to_consent(client, params)) | set(existing.scopes if existing else []))
        if existing is None:
            session.add(Consent(client_id=client.client_id, sub=sso.sub, scopes=scopes, granted_at=int(time.time())))
        else:
            existing.scopes, existing.granted_at = scopes, int(time.time())
    return await issue_code(svc, pending, login_id, sso)
