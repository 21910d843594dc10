"""What an app calls a person (``sub``): stable, never the national ID, and pairwise on request,
so two apps that asked for it cannot link their users."""

from __future__ import annotations

from tests.support.person import Person
from tests.support.rp import App
from tests.support.server import DEMO_SECRET_HASH, default_clients

PAIRWISE_APPS = [
    {"client_id": "clinic", "name": "Clinic", "client_secret_hash": DEMO_SECRET_HASH, "subject_type": "pairwise",
     "redirect_uris": ["http://clinic.localhost:5300/callback", "http://clinic.localhost:5300/other"]},
    {"client_id": "library", "name": "Library", "client_secret_hash": DEMO_SECRET_HASH, "subject_type": "pairwise",
     "redirect_uris": ["http://library.localhost:5301/callback"]},
]


def sub_seen_by(server, person, client_id, redirect_uri) -> str:
    app = App(server.issuer, client_id, redirect_uri)
    tokens = app.sign_in(person)
    sub = app.id_token_claims(tokens)["sub"]
    assert app.userinfo(tokens["access_token"]).json()["sub"] == sub
    return sub


def test_pairwise_clients_each_get_their_own_stable_sub_for_the_same_person(make_server):
    server = make_server(clients=default_clients() + PAIRWISE_APPS)
    person = Person(server.issuer)
    public = sub_seen_by(server, person, "demo", "http://127.0.0.1:5000/callback")
    clinic = sub_seen_by(server, person, "clinic", "http://clinic.localhost:5300/callback")
    library = sub_seen_by(server, person, "library", "http://library.localhost:5301/callback")
    assert len({public, clinic, library}) == 3

    again = Person(server.issuer)  # another day, another browser: the same subs
    assert sub_seen_by(server, again, "clinic", "http://clinic.localhost:5300/other") == clinic
    assert sub_seen_by(server, again, "demo", "http://127.0.0.1:5000/callback") == public
    server.restart()
    assert sub_seen_by(server, Person(server.issuer), "library", "http://library.localhost:5301/callback") == library


def test_a_native_app_returning_through_its_own_uri_scheme_gets_a_pairwise_sub(make_server):
    """A phone app registered with only a private-use scheme (RFC 8252 §7.1) and pairwise subjects:
    its redirect URIs have no host to derive the sector from (OIDC Core §8.1), so the app itself is
    the sector. The person signs in (no 500), and the app keeps seeing one sub of its own."""
    native = {"client_id": "clinic-phone", "name": "Clinic on the phone", "token_endpoint_auth_method": "none",
              "subject_type": "pairwise", "redirect_uris": ["th.ac.example.clinic:/oauth2redirect"]}
    server = make_server(clients=default_clients() + [native])

    def sub_on_the_phone(person) -> str:
        app = App(server.issuer, "clinic-phone", "th.ac.example.clinic:/oauth2redirect", secret=None, auth="none")
        return app.id_token_claims(app.sign_in(person))["sub"]

    person = Person(server.issuer)
    first = sub_on_the_phone(person)
    assert sub_on_the_phone(person) == first  # again, through the single sign-on session
    assert first != sub_seen_by(server, person, "demo", "http://127.0.0.1:5000/callback")
    assert sub_on_the_phone(Person(server.issuer)) == first  # another day, another browser
