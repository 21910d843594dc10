"""What an app calls a person (``sub``): stable, never the national ID, and pairwise on request,
so two apps that asked for it cannot link their users."""

from __future__ import annotations

from tests.support.person import Person
from tests.support.rp import authlib_client, verify_id_token
from tests.support.server import DEMO_SECRET_HASH, default_clients

PAIRWISE_APPS = [
    {"client_id": "clinic", "name": "Clinic", "client_secret_hash": DEMO_SECRET_HASH, "subject_type": "pairwise",
     "redirect_uris": ["http://clinic.localhost:5300/callback", "http://clinic.localhost:5300/other"]},
    {"client_id": "library", "name": "Library", "client_secret_hash": DEMO_SECRET_HASH, "subject_type": "pairwise",
     "redirect_uris": ["http://library.localhost:5301/callback"]},
]


def sub_seen_by(server, person, client_id, redirect_uri) -> str:
    app = authlib_client(server.issuer, client_id, "demo-secret", redirect_uri)
    url, _ = app.create_authorization_url(server.url("/authorize"), code_verifier="s" * 43)
    token = app.fetch_token(server.url("/token"), authorization_response=person.sign_in(url).url,
                            code_verifier="s" * 43)
    sub = verify_id_token(server.issuer, token["id_token"], client_id)["sub"]
    assert app.get(server.url("/userinfo")).json()["sub"] == sub
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
