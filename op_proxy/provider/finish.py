"""The OIDC front door's end of a sign-in: consent if needed, then a code to the redirect URI."""

from __future__ import annotations

import time

from quart import Blueprint, redirect, request

from op_proxy import audit
from op_proxy.claims.release import requested_claim_names, scopes_for_claims
from op_proxy.claims.subjects import subject_for
from op_proxy.clients.registry import find_client
from op_proxy.errors import AccessDenied, ConsentRequired, LoginRequired, PageError, Refusal
from op_proxy.i18n import N_
from op_proxy.i18n import gettext as _
from op_proxy.provider import responses
from op_proxy.security import random_token, token_digest
from op_proxy.services import Services, services
from op_proxy.signin import flow
from op_proxy.signin.flow import SignedIn
from op_proxy.signin.pending import OidcRequest, PendingSignIn
from op_proxy.storage import sign_ins
from op_proxy.storage.models import Client
from op_proxy.web import client_ip, forms_lead_only_to, render_page

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


def scopes_to_consent(client: Client, sign_in: OidcRequest) -> list[str]:
    """The granted scopes plus the scope of each claim asked for one by one (``claims``, OIDC Core
    §5.5): those claims are released too, so the person's consent must cover them."""
    by_claim = scopes_for_claims(requested_claim_names(sign_in.claims), client.allowed_scopes)
    return list(dict.fromkeys([*sign_in.scope, *by_claim]))


async def needs_consent(svc: Services, client: Client, sign_in: OidcRequest, sub: str) -> bool:
    if "consent" in sign_in.prompt:
        return True
    if not client.require_consent:
        return False
    consented = await svc.db.run(sign_ins.consented_scopes, client.client_id, sub)
    return consented is None or not set(scopes_to_consent(client, sign_in)) <= set(consented)


def expected_subjects(hinted_sub: str | None, claims: dict | None) -> list:
    """Whom the application says must be signed in: the subject of its id_token_hint (OIDC Core
    §3.1.2.1) and a ``sub`` asked for with a value in the claims parameter (§5.5.1)."""
    expected = [hinted_sub] if hinted_sub is not None else []
    for member in (claims or {}).values():
        sub = member.get("sub")
        if isinstance(sub, dict) and "value" in sub:
            expected.append(sub["value"])
    return expected


def is_expected_person(svc: Services, client: Client, sign_in: OidcRequest, sub: str) -> bool:
    subject = subject_for(sub, client, svc.keyring.subject_salt())
    return all(expected == subject for expected in expected_subjects(sign_in.hinted_sub, sign_in.claims))


async def back_to_client(sign_in: OidcRequest, refusal: Refusal):
    """``refusal`` redirected to the client, as a response: the sign-in flow sets its session cookie
    on what a front door returns, so a front door answers rather than raises."""
    return await responses.answer(refusal.to_client(sign_in.redirect_uri, sign_in.response_mode, sign_in.state))


async def enabled_client(svc: Services, client_id: str) -> Client:
    client = await find_client(svc.db, client_id)
    if client is None:
        raise PageError(_("Unknown application"), _("This application has been removed or disabled."))
    return client


async def finish_oidc(svc: Services, pending: PendingSignIn, signed_in: SignedIn):
    """The person is signed in: a code for the application (``Ending``), unless consent comes first or
    the application must be told no."""
    sign_in = pending.request
    client = await enabled_client(svc, pending.client_id)
    if not is_expected_person(svc, client, sign_in, signed_in.session.sub):
        # Someone else signed in than the application asked for: it must not get a code for them.
        return await back_to_client(sign_in, LoginRequired(
            "the signed-in person is not the one the application asked for"))
    if await needs_consent(svc, client, sign_in, signed_in.session.sub):
        if "none" in sign_in.prompt:
            return await back_to_client(sign_in, ConsentRequired("the person has not consented to this client"))
        return redirect(f"/consent/{pending.id}", 303)
    return await code_for(svc, pending, signed_in, client)


async def code_for(svc: Services, pending: PendingSignIn, signed_in: SignedIn, client: Client, *,
                   consented: list[str] | None = None) -> flow.Ending:
    """The ending that gives the application its code: the redirect made now (kept for a retry), and the
    code, its grant (with the user handler's answer), the person's consent if they just gave it and
    the audit row, written with the pending sign-in's end."""
    sign_in, sso = pending.request, signed_in.session
    now = int(time.time())
    code = random_token(32)
    grant_id = random_token(16)
    code_row = {"code_digest": token_digest(code), "grant_id": grant_id, "client_id": client.client_id,
                "redirect_uri": sign_in.redirect_uri, "code_challenge": sign_in.code_challenge,
                "code_challenge_method": sign_in.code_challenge_method, "nonce": sign_in.nonce,
                "expires_at": now + svc.settings.tokens.authorization_code_lifetime}
    response = await responses.to_client(svc, sign_in.redirect_uri, sign_in.response_mode,
                                         {"code": code, "state": sign_in.state})
    entry = audit.entry("authorization_code_issued", client_id=client.client_id, sub=sso.sub,
                        upstream=sso.upstream, ip=client_ip())

    def writes(connection):
        grant = {"id": grant_id, "client_id": client.client_id, "sub": sso.sub, "sid": sso.sid,
                 "subject": subject_for(sso.sub, client, svc.keyring.subject_salt()),
                 "scope": " ".join(sign_in.scope), "claims": sign_in.claims, "auth_time": sso.auth_time,
                 "acr": sso.acr, "amr": sso.amr, "app_user": signed_in.app_user, "created_at": now}
        if consented is not None:
            sign_ins.add_consent(connection, client.client_id, sso.sub, consented)
        sign_ins.issue_grant_and_code(connection, grant, code_row)

    return flow.Ending(answer=response, writes=writes, audit_entries=(entry,),
                       application=(client, sign_in.scope))


@blueprint.route("/consent/<login_id>", methods=["GET", "POST"])
async def consent(login_id: str):
    svc = services()
    pending = await flow.load(svc, login_id)
    signed_in = await flow.current_sign_in(svc)
    if signed_in is None:
        return redirect(f"/login/{login_id}", 303)
    client = await enabled_client(svc, pending.client_id)
    sign_in = pending.request
    if request.method == "GET":
        return forms_lead_only_to(await render_page("consent.html", client=client, login_id=login_id,
                                                    scopes=scopes_to_consent(client, sign_in)), sign_in.answered_at())
    form = await request.form
    if form.get("decision") != "allow":
        denied = audit.entry("consent_denied", outcome="failure", client_id=client.client_id,
                             sub=signed_in.session.sub, ip=client_ip())
        refusal = await back_to_client(sign_in, AccessDenied("the person did not allow this application"))

        async def refused_again():  # a second Deny is told the same
            return refusal
        return await flow.end(svc, pending, signed_in, flow.Ending(answer=refusal, audit_entries=(denied,),
                                                                   if_ended_before=refused_again))
    return await flow.end(svc, pending, signed_in,
                          await code_for(svc, pending, signed_in, client, consented=scopes_to_consent(client, sign_in)))
