"""An admin changes an application in the panel: what they delete or disable stops working at once,
what they switch gets what it needs, and what cannot work on this server is refused when they save,
in their language, with the field marked."""

from __future__ import annotations

import re
from html import unescape

import httpx
import pytest

from tests.support.admin import csrf_token, hidden_fields, post_form, signed_in_admin
from tests.support.person import Arrival, Person
from tests.support.rp import assert_error
from tests.test_admin_sign_in_and_app_secrets import (
    APP_REDIRECT,
    LEGACY_REDIRECT,
    client_authenticates,
    hs256_verifies,
    message_of,
    register,
    shown_secret,
    shown_secrets,
    sign_in_to_app,
)

EDIT_FORM = {"name": "แอปทดสอบ", "mode": "oidc", "token_endpoint_auth_method": "client_secret_basic",
             "subject_type": "public", "allowed_scopes": ["openid", "profile", "email"],
             "legacy_token_lifetime": "3600", "redirect_uris": APP_REDIRECT}


def edit(admin: Person, server, client_id: str, **changes) -> httpx.Response:
    """Open the app's page, change the form and save it, as an admin at a browser does."""
    return post_form(admin, server.url(f"/admin/clients/{client_id}"), f"/admin/clients/{client_id}",
                     **{**EDIT_FORM, **changes})


def marked_fields(page: httpx.Response) -> list[str]:
    """The names of the inputs the page marks as wrong (for the eye and for a screen reader)."""
    return [name for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", page.text)
            if "is-invalid" in tag and 'aria-invalid="true"' in tag
            for name in re.findall(r'name="([^"]+)"', tag)]


def refresh(server, client_id: str, secret: str, refresh_token: str) -> httpx.Response:
    return httpx.post(server.url("/token"), auth=(client_id, secret),
                      data={"grant_type": "refresh_token", "refresh_token": refresh_token})


def introspect(server, client_id: str, secret: str, token: str) -> dict:
    answer = httpx.post(server.url("/introspect"), auth=(client_id, secret), data={"token": token})
    assert answer.status_code == 200, answer.text
    return answer.json()


def userinfo(server, access_token: str) -> httpx.Response:
    return httpx.get(server.url("/userinfo"), headers={"Authorization": f"Bearer {access_token}"})


# -- what a deleted or disabled app was given ends with it -----------------------------------------

@pytest.mark.parametrize("database_url", ["sqlite", "mariadb"], indirect=True)
def test_an_app_deleted_and_registered_again_under_its_client_id_inherits_none_of_its_tokens(make_server,
                                                                                              database_url):
    """A payroll app is retired and someone registers "payroll" again: whoever kept the old app's
    tokens (a laptop sold on, a leaked log) must not get the person's data through the new one."""
    server = make_server()
    admin = signed_in_admin(server)
    old_secret = shown_secret(register(admin, server, client_id="payroll", redirect_uris=APP_REDIRECT))
    old = sign_in_to_app(server, "payroll", old_secret)
    assert userinfo(server, old["access_token"]).status_code == 200

    post_form(admin, server.url("/admin/clients/payroll"), "/admin/clients/payroll/delete")
    new_secret = shown_secret(register(admin, server, client_id="payroll", redirect_uris=APP_REDIRECT))

    refused = refresh(server, "payroll", new_secret, old["refresh_token"])
    assert_error(refused, "invalid_grant")
    assert introspect(server, "payroll", new_secret, old["access_token"]) == {"active": False}
    assert userinfo(server, old["access_token"]).status_code == 401
    # The new app works, with tokens of its own.
    assert userinfo(server, sign_in_to_app(server, "payroll", new_secret)["access_token"]).status_code == 200


def test_disabling_an_app_ends_its_tokens_now_not_when_they_expire(make_server):
    """An app is disabled because it leaked: its access tokens stop at /userinfo at once, and enabling
    it again does not bring the old ones back."""
    server = make_server()
    admin = signed_in_admin(server)
    secret = shown_secret(register(admin, server, client_id="intranet", redirect_uris=APP_REDIRECT))
    tokens = sign_in_to_app(server, "intranet", secret)

    post_form(admin, server.url("/admin/clients/intranet"), "/admin/clients/intranet/enabled", enabled="0")
    assert userinfo(server, tokens["access_token"]).status_code == 401

    post_form(admin, server.url("/admin/clients/intranet"), "/admin/clients/intranet/enabled", enabled="1")
    assert userinfo(server, tokens["access_token"]).status_code == 401
    assert introspect(server, "intranet", secret, tokens["access_token"]) == {"active": False}
    refused = refresh(server, "intranet", secret, tokens["refresh_token"])
    assert_error(refused, "invalid_grant")


def test_an_app_s_page_says_whether_it_is_enabled(make_server):
    server = make_server()
    admin = signed_in_admin(server)
    register(admin, server, client_id="intranet", redirect_uris=APP_REDIRECT)

    def state() -> str:
        page = admin.http.get(server.url("/admin/clients/intranet")).text
        return unescape(re.search(r'id="client-state">([^<]+)<', page).group(1))

    assert state() == "Enabled"
    post_form(admin, server.url("/admin/clients/intranet"), "/admin/clients/intranet/enabled", enabled="0")
    assert state() == "Disabled: signs nobody in"


# -- switching a mode gives the app what it needs; what cannot work is refused at save time --------

def legacy_sign_in(server, client_id: str) -> str:
    person = Person(server.issuer)
    arrival = person.sign_in(server.url("/public/login.php") + f"?client_id={client_id}&redirect_uri={LEGACY_REDIRECT}")
    assert isinstance(arrival, Arrival) and arrival.url.startswith(LEGACY_REDIRECT + "?token="), arrival
    return arrival.params["token"]


def test_an_app_switched_to_query_token_is_shown_its_new_hs256_key_once_and_signs_with_it(make_server):
    """An old PHP app moves from OIDC to the ?token= callback: the admin must be handed the key the
    app will check, or every sign-in would fail."""
    server = make_server()
    admin = signed_in_admin(server)
    register(admin, server, client_id="old-php", redirect_uris=LEGACY_REDIRECT)

    switched = edit(admin, server, "old-php", mode="query_token", redirect_uris=LEGACY_REDIRECT)
    key = shown_secrets(switched)["HS256 key for ?token="]

    assert hs256_verifies(legacy_sign_in(server, "old-php"), key)
    assert key not in admin.http.get(server.url("/admin/clients/old-php")).text


def test_the_old_gateway_s_global_key_cannot_be_chosen_on_a_server_that_has_none(make_server):
    server = make_server()
    admin = signed_in_admin(server)
    refused = register(admin, server, client_id="old-php", mode="query_token", redirect_uris=LEGACY_REDIRECT,
                       legacy_use_global_key="on")
    assert refused.status_code == 400 and "no global key" in message_of(refused)
    assert marked_fields(refused) == ["legacy_use_global_key"]
    assert admin.http.get(server.url("/admin/clients/old-php")).status_code == 404

    register(admin, server, client_id="old-php", mode="query_token", redirect_uris=LEGACY_REDIRECT)
    refused = edit(admin, server, "old-php", mode="query_token", redirect_uris=LEGACY_REDIRECT,
                   legacy_use_global_key="on")
    assert refused.status_code == 400 and "no global key" in message_of(refused)
    legacy_sign_in(server, "old-php")  # still signs with its own key


def test_a_php_session_folder_op_proxy_cannot_write_into_is_refused_when_the_admin_saves(make_server, tmp_path):
    """A typo in the session folder would otherwise turn every sign-in into an error page."""
    server = make_server()
    admin = signed_in_admin(server)
    php_app = {"client_id": "shop", "mode": "php_session", "redirect_uris": LEGACY_REDIRECT,
               "php_save_handler": "files"}
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")

    for wrong in (tmp_path / "no-such-folder", a_file):
        refused = register(admin, server, **php_app, php_save_path=str(wrong))
        assert refused.status_code == 400, wrong
        assert message_of(refused) == (f"PHP session: save_path: the folder {wrong} does not exist on this server; "
                                       "create it or give the app's session.save_path")
        assert marked_fields(refused) == ["php_save_path"]
        assert f'value="{wrong}"' in refused.text  # nothing typed is lost

    folder = tmp_path / "sessions"
    folder.mkdir()
    registered = register(admin, server, **php_app, php_save_path=str(folder))
    assert registered.status_code == 303, registered.text  # and no secret it would never use


def test_a_thai_admin_is_told_in_thai_what_to_fix_and_the_field_is_marked(make_server):
    server = make_server()
    admin = signed_in_admin(server, language="th")

    refused = register(admin, server, client_id="hr", redirect_uris="not a url")

    assert refused.status_code == 400
    said = message_of(refused)
    assert said.startswith("Redirect URI: 'not a url' ต้องขึ้นต้นด้วย https://"), said
    assert "redirect_uris" not in said and "must" not in said
    assert marked_fields(refused) == ["redirect_uris"]

    lifetime = register(admin, server, client_id="hr", redirect_uris=APP_REDIRECT, access_token_lifetime="86400")
    assert message_of(lifetime).startswith("อายุของ access token: ไม่เกิน 900 วินาที"), message_of(lifetime)
    assert marked_fields(lifetime) == ["access_token_lifetime"]


def test_a_confidential_app_is_made_public_by_editing_and_back_with_a_new_secret_shown_once(make_server):
    """A single-page app was registered as confidential by mistake; later it gets a back end again."""
    server = make_server()
    admin = signed_in_admin(server)
    first = shown_secret(register(admin, server, client_id="spa", redirect_uris=APP_REDIRECT))

    made_public = edit(admin, server, "spa", token_endpoint_auth_method="none")
    assert made_public.status_code == 303, message_of(made_public)
    assert not client_authenticates(server, "spa", first)
    assert "/admin/clients/spa/rotate/secret" not in admin.http.get(server.url("/admin/clients/spa")).text

    second = shown_secrets(edit(admin, server, "spa", token_endpoint_auth_method="client_secret_basic"))
    assert set(second) == {"Client secret"} and second["Client secret"] != first
    assert client_authenticates(server, "spa", second["Client secret"])


def test_an_edit_form_opened_before_another_admin_saved_is_refused_and_overwrites_nothing(make_server):
    """Two admins open the same app; the first adds a redirect URI, the second (with the old page)
    changes the name. The second save would silently drop the first admin's URI."""
    server = make_server()
    first_admin = signed_in_admin(server, "somchai")
    second_admin = signed_in_admin(server, "somying")
    register(first_admin, server, client_id="hr", redirect_uris=APP_REDIRECT)
    stale_page = second_admin.http.get(server.url("/admin/clients/hr")).text

    saved = edit(first_admin, server, "hr", redirect_uris=f"{APP_REDIRECT}\nhttps://hr.example.ac.th/cb")
    assert saved.status_code == 303, message_of(saved)

    late = second_admin.http.post(server.url("/admin/clients/hr"), data={
        "csrf_token": csrf_token(stale_page), **hidden_fields(stale_page, "/admin/clients/hr"),
        **EDIT_FORM, "name": "ระบบบุคลากร"})
    assert late.status_code == 409
    assert "Another admin changed this application" in message_of(late)
    now = admin_page_text(second_admin, server, "hr")
    assert "https://hr.example.ac.th/cb" in now and "ระบบบุคลากร" not in now


def admin_page_text(admin: Person, server, client_id: str) -> str:
    return unescape(admin.http.get(server.url(f"/admin/clients/{client_id}")).text)


def test_a_php_session_app_is_not_shown_a_client_secret_it_never_uses(make_server, tmp_path):
    server = make_server()
    admin = signed_in_admin(server)
    registered = register(admin, server, client_id="shop", mode="php_session", redirect_uris=LEGACY_REDIRECT,
                          php_save_handler="files", php_save_path=str(tmp_path))
    assert registered.status_code == 303 and "secret-value" not in registered.text
    assert "/admin/clients/shop/rotate/secret" not in admin.http.get(server.url("/admin/clients/shop")).text


# -- the panel's own accounts and figures ------------------------------------------------------------

def test_an_admin_name_that_differs_only_by_case_is_refused(make_server):
    """"WATCHER" beside "watcher" would be two accounts that everyone takes for one."""
    import os
    import subprocess
    import sys

    from tests.support.admin import create_admin
    from tests.support.server import ROOT

    server = make_server()
    create_admin(server, "watcher", role="viewer")
    env = {key: value for key, value in os.environ.items() if not key.startswith("OP_PROXY_")}
    second = subprocess.run([sys.executable, "-m", "op_proxy.cli", "--config", str(server.config_path), "admins",
                             "create", "WATCHER"], input="correct horse battery staple\n", text=True, env=env,
                            capture_output=True, cwd=ROOT, timeout=120)
    assert second.returncode == 1
    assert second.stderr.strip() == ("op-proxy: admin watcher already exists "
                                     "(names differ by more than upper and lower case)")


def test_the_organisation_account_stays_offered_after_a_wrong_password(make_server):
    from tests.support.admin import create_admin, try_password

    server = make_server(extra='[admin]\nsso_admin_groups = ["op-proxy-admins"]\nsso_upstreams = ["local"]\n')
    create_admin(server, "boss")
    browser = httpx.Client(base_url=server.base, headers={"Accept-Language": "en"}, timeout=15)
    assert 'href="/admin/login/sso"' in browser.get("/admin/login").text

    wrong = try_password(browser, "boss", "not the password")

    assert wrong.status_code == 401 and 'href="/admin/login/sso"' in wrong.text


def test_the_dashboard_counts_the_failed_admin_sign_ins_the_audit_log_lists(make_server):
    from tests.support.admin import try_password

    server = make_server()
    admin = signed_in_admin(server)
    guesser = httpx.Client(base_url=server.base, timeout=15)
    for name in ("boss", "boss", "root", "administrator"):
        assert try_password(guesser, name, "a guess at the password").status_code == 401

    figures = admin.http.get(server.url("/admin/dashboard.json")).json()
    listed = admin.http.get(server.url("/admin/audit"), params={"event": "admin_sign_in", "outcome": "failure"})
    assert figures["admin_failures_24h"] == 4 == len(re.findall(r'<tr class="audit-row', listed.text)), listed.text
    assert 'id="admin-failures-24h">4<' in admin.http.get(server.url("/admin/")).text


def test_a_thai_admin_sees_their_role_in_thai_beside_their_name(make_server):
    server = make_server()
    admin = signed_in_admin(server, "boss", language="th")
    viewer = signed_in_admin(server, "watcher", role="viewer", language="th")

    assert "boss (ผู้ดูแล)" in admin.http.get(server.url("/admin/")).text
    assert "watcher (ผู้ดูอย่างเดียว)" in viewer.http.get(server.url("/admin/")).text


def test_every_field_of_the_panel_keeps_its_name_once_something_is_typed_in_it(make_server):
    """A placeholder disappears as soon as one types: no field may have only a placeholder to say what it is."""
    server = make_server()
    admin = signed_in_admin(server)
    register(admin, server, client_id="intranet", redirect_uris=APP_REDIRECT)
    for path in ("/admin/clients", "/admin/clients/new", "/admin/clients/intranet", "/admin/users", "/admin/audit"):
        page = admin.http.get(server.url(path)).text
        labelled = set(re.findall(r'<label[^>]*for="([^"]+)"', page))
        for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", page):
            if 'type="hidden"' in tag or 'type="checkbox"' in tag:
                continue
            ident = re.search(r'id="([^"]+)"', tag)
            assert ident and ident.group(1) in labelled, f"{path}: {tag}"


def test_an_admin_chooses_opaque_access_tokens_for_an_app_whose_apis_introspect(make_server):
    """The finance office's API asks op-proxy about every token anyway: its admin picks opaque access
    tokens in the panel, so a token copied out of a browser says nothing to whoever reads it."""
    server = make_server()
    admin = signed_in_admin(server)
    secret = shown_secret(register(admin, server, client_id="finance", redirect_uris=APP_REDIRECT,
                                   access_token_format="opaque"))
    assert 'value="opaque" selected' in admin.http.get(server.url("/admin/clients/finance")).text

    tokens = sign_in_to_app(server, "finance", secret)
    assert tokens["access_token"].count(".") == 0  # a reference, not a JWT anyone can decode
    assert userinfo(server, tokens["access_token"]).status_code == 200
    assert introspect(server, "finance", secret, tokens["access_token"])["active"] is True

    # Back to JWTs: the next token is one an API can check by itself.
    assert edit(admin, server, "finance", access_token_format="jwt").status_code in (200, 302, 303)
    again = sign_in_to_app(server, "finance", secret)
    assert again["access_token"].count(".") == 2
