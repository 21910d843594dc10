"""The storage operations of the hot paths (``op_proxy.storage.operations``), each run on SQLite and
on MariaDB: what a flow sees when it redeems a code, rotates a refresh token, checks or revokes a
token, and reads a client that an administrator just changed.

Dex runs one conformance suite against every storage backend; this is ours.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError

from op_proxy import audit
from op_proxy.errors import InvalidGrant
from op_proxy.security import random_token, token_digest
from op_proxy.storage import Database, caches, operations
from op_proxy.storage.models import (
    AccessToken,
    Account,
    AuditEvent,
    AuthorizationCode,
    Client,
    Grant,
    RefreshToken,
    SsoSession,
)

on_both = pytest.mark.parametrize("database_url", ["sqlite", "mariadb"], indirect=True)

NOW = int(time.time())


def run(database_url: str, story):
    """``story(db)`` against a freshly migrated database, as one op-proxy process would see it."""
    async def main():
        db = Database(database_url)
        try:
            await db.upgrade()
            return await story(db)
        finally:
            await db.close()

    return asyncio.run(main())


async def a_signed_in_person(db, *, client_id: str = "app", sid: str | None = None) -> str:
    """A person whose sign-in allowed ``client_id`` something: their account and grant; the grant's id."""
    grant_id = "grant-" + random_token(6)
    async with db.transaction() as session:
        if await session.get(Account, "person-1") is None:
            session.add(Account(sub="person-1", upstream="local", upstream_subject="somchai",
                                profile={"name": "Somchai", "email": "somchai@example.org"},
                                created_at=NOW, updated_at=NOW))
        session.add(Grant(id=grant_id, client_id=client_id, sub="person-1", subject=None, sid=sid or "sid-1",
                          scope="openid profile email", claims=None, auth_time=NOW, acr=None, amr=["pwd"],
                          app_user=None, created_at=NOW))
    return grant_id


async def a_code(db, grant_id: str, *, expires_at: int = NOW + 60) -> str:
    code = random_token(32)
    async with db.transaction() as session:
        session.add(AuthorizationCode(code_digest=token_digest(code), grant_id=grant_id, client_id="app",
                                      redirect_uri="https://app.example/cb", code_challenge=None,
                                      code_challenge_method=None, nonce="n-1", expires_at=expires_at))
    return code


async def a_refresh_token(db, grant_id: str, *, expires_at: int = NOW + 3600) -> str:
    token = random_token(32)
    async with db.transaction() as session:
        session.add(RefreshToken(token_digest=token_digest(token), grant_id=grant_id, client_id="app",
                                 created_at=NOW, expires_at=expires_at))
    return token


def minted(grant, profile, *, opaque: bool = False):
    """What the minter would return: a response and the two rows, without signing anything."""
    access = random_token(16)
    access_row = {"jti": token_digest(access) if opaque else access, "grant_id": grant.id,
                  "client_id": grant.client_id, "expires_at": NOW + 600}
    if opaque:
        access_row |= {"scope": grant.scope, "issued_at": NOW}
    refresh = random_token(32)
    refresh_row = {"token_digest": token_digest(refresh), "grant_id": grant.id, "client_id": grant.client_id,
                   "created_at": NOW, "expires_at": NOW + 3600}
    return {"access_token": access, "refresh_token": refresh, "profile": profile}, access_row, refresh_row


def accept(_code) -> None:
    pass


def code_audit(event, outcome, code, grant):
    return audit.entry(event, outcome=outcome, client_id=code["client_id"], sub=grant.sub)


def refresh_audit(event, outcome, grant):
    return audit.entry(event, outcome=outcome, client_id=grant.client_id, sub=grant.sub)


async def redeem(db, code: str, check=accept):
    return await operations.redeem_code(db, token_digest(code), check,
                                        lambda _code, grant, profile: minted(grant, profile), code_audit)


async def rotate(db, token: str, *, client_id: str = "app", needs_upstream=lambda *_: False,
                 upstream_done: bool = False):
    return await operations.rotate_refresh_token(
        db, token_digest(token), client_id, narrow=lambda grant: grant.scope, needs_upstream=needs_upstream,
        upstream_done=upstream_done, mint=lambda grant, profile: minted(grant, profile), audit_for=refresh_audit)


async def events(db) -> list[tuple[str, str]]:
    async with db.session() as session:
        return [(e.event, e.outcome) for e in (await session.scalars(select(AuditEvent).order_by(AuditEvent.id)))]


async def assert_grant_ended(db, grant_id: str, issued: dict) -> None:
    """The grant is revoked, and neither token it gave (``issued``) is accepted any more."""
    async with db.session() as session:
        assert (await session.get(Grant, grant_id)).revoked_at is not None
    assert await operations.active_access_token_row(db, issued["access_token"], with_profile=False) is None
    assert await operations.active_refresh_token_row(db, token_digest(issued["refresh_token"])) is None


# -- authorization codes -------------------------------------------------------------------------------

@on_both
def test_a_code_is_redeemed_once_with_its_account_and_the_tokens_and_audit_row_are_stored(database_url):
    async def story(db):
        grant_id = await a_signed_in_person(db)
        issued = await redeem(db, await a_code(db, grant_id))

        assert issued["profile"]["name"] == "Somchai"
        access = await operations.active_access_token_row(db, issued["access_token"], with_profile=True)
        assert access.grant.id == grant_id and access.profile["email"] == "somchai@example.org"
        refresh = await operations.active_refresh_token_row(db, token_digest(issued["refresh_token"]))
        assert refresh.grant.id == grant_id
        assert await events(db) == [("tokens_issued", "success")]

    run(database_url, story)


@on_both
def test_what_an_upstream_said_comes_back_as_it_was_thai_names_huge_numbers_and_older_rows_included(database_url):
    # Profiles and claims are written by orjson; what it refuses, or what json.dumps wrote before
    # (NaN), still round-trips: a sign-in never fails on the shape of a claim.
    said = {"name": "สมชาย ใจดี", "student_number": 2**70, "scores": [1.5, 2], "nested": {"1": True},
            "groups": ["คณะวิศวกรรมศาสตร์"]}

    async def story(db):
        grant_id = await a_signed_in_person(db)
        async with db.transaction() as session:
            account = await session.get(Account, "person-1")
            account.profile = said
        issued = await redeem(db, await a_code(db, grant_id))
        assert issued["profile"] == said
        access = await operations.active_access_token_row(db, issued["access_token"], with_profile=True)
        assert access.profile == said

        if db.is_sqlite:  # a row as json.dumps wrote a NaN (MariaDB's JSON check never let one in)
            async with db.transaction() as session:
                await session.execute(text("UPDATE accounts SET profile = '{\"weight\": NaN, \"name\": \"\\u0e2a\"}'"))
            async with db.session() as session:
                older = (await session.get(Account, "person-1")).profile
            assert older["name"] == "ส" and older["weight"] != older["weight"]  # NaN is itself unequal

    run(database_url, story)


@on_both
def test_a_code_used_twice_is_refused_and_revokes_everything_its_first_use_gave(database_url):
    async def story(db):
        grant_id = await a_signed_in_person(db)
        code = await a_code(db, grant_id)
        first = await redeem(db, code)

        with pytest.raises(InvalidGrant, match="already been used"):
            await redeem(db, code)

        await assert_grant_ended(db, grant_id, first)
        assert await events(db) == [("tokens_issued", "success"), ("authorization_code_replayed", "failure")]

    run(database_url, story)


@on_both
def test_a_refused_check_changes_nothing_and_the_code_still_works(database_url):
    async def story(db):
        code = await a_code(db, await a_signed_in_person(db))

        def wrong_verifier(_code):
            raise InvalidGrant("code_verifier does not match the code_challenge")

        with pytest.raises(InvalidGrant, match="code_verifier"):
            await redeem(db, code, check=wrong_verifier)
        async with db.session() as session:
            assert (await session.get(AuthorizationCode, token_digest(code))).consumed_at is None

        assert (await redeem(db, code))["access_token"]

    run(database_url, story)


@on_both
def test_of_two_redemptions_racing_exactly_one_gets_tokens(database_url):
    async def story(db):
        code = await a_code(db, await a_signed_in_person(db))

        outcomes = await asyncio.gather(redeem(db, code), redeem(db, code), return_exceptions=True)

        assert sorted(type(o).__name__ for o in outcomes) == ["InvalidGrant", "dict"]

    run(database_url, story)


@on_both
def test_an_unknown_code_is_refused(database_url):
    async def story(db):
        with pytest.raises(InvalidGrant, match="unknown"):
            await redeem(db, "never-issued")

    run(database_url, story)


# -- refresh tokens -------------------------------------------------------------------------------------

@on_both
def test_a_refresh_token_rotates_and_its_reuse_revokes_the_whole_grant(database_url):
    async def story(db):
        grant_id = await a_signed_in_person(db)
        token = await a_refresh_token(db, grant_id)
        issued = await rotate(db, token)

        with pytest.raises(InvalidGrant, match="already been used"):
            await rotate(db, token)

        await assert_grant_ended(db, grant_id, issued)
        assert await events(db) == [("tokens_issued", "success"), ("refresh_token_reused", "failure")]

    run(database_url, story)


@on_both
def test_another_clients_refresh_token_and_an_expired_one_are_refused(database_url):
    async def story(db):
        grant_id = await a_signed_in_person(db)
        token = await a_refresh_token(db, grant_id)
        with pytest.raises(InvalidGrant, match="unknown refresh token"):
            await rotate(db, token, client_id="someone-else")
        assert (await rotate(db, token))["access_token"]  # untouched by the refusal

        expired = await a_refresh_token(db, grant_id, expires_at=NOW - 1)
        with pytest.raises(InvalidGrant, match="expired"):
            await rotate(db, expired)

    run(database_url, story)


@on_both
def test_a_refresh_that_needs_the_upstream_stops_before_changing_anything(database_url):
    async def story(db):
        grant_id = await a_signed_in_person(db, sid="sid-upstream")
        async with db.transaction() as session:
            session.add(SsoSession(cookie_digest="c" * 64, sid="sid-upstream", sub="person-1", upstream="psu",
                                   auth_time=NOW, acr=None, amr=["pwd"], upstream_id_token=None,
                                   upstream_refresh_token="sealed", created_at=NOW, expires_at=NOW + 3600))
        token = await a_refresh_token(db, grant_id)
        asked = []

        def needs_upstream(upstream, has_refresh_token):
            asked.append((upstream, has_refresh_token))
            return True

        paused = await rotate(db, token, needs_upstream=needs_upstream)
        assert isinstance(paused, operations.UpstreamRefreshNeeded) and paused.grant.id == grant_id
        assert asked == [("psu", True)]
        assert (await rotate(db, token, needs_upstream=needs_upstream, upstream_done=True))["access_token"]

    run(database_url, story)


# -- checking and revoking ----------------------------------------------------------------------------

@on_both
def test_a_revoked_access_token_is_refused_at_once(database_url):
    async def story(db):
        grant_id = await a_signed_in_person(db)
        issued = await redeem(db, await a_code(db, grant_id))
        jti = issued["access_token"]
        assert await operations.active_access_token_row(db, jti, with_profile=False) is not None

        await operations.revoke_access_token(db, jti, audit.entry("token_revoked", client_id="app"))

        assert await operations.active_access_token_row(db, jti, with_profile=False) is None
        assert (await operations.active_refresh_token_row(db, token_digest(issued["refresh_token"]))) is not None
        assert ("token_revoked", "success") in await events(db)

    run(database_url, story)


@on_both
def test_revoking_a_grant_ends_all_its_tokens(database_url):
    async def story(db):
        grant_id = await a_signed_in_person(db)
        issued = await redeem(db, await a_code(db, grant_id))

        await operations.revoke_grant(db, grant_id, "revoked_by_client")

        await assert_grant_ended(db, grant_id, issued)

    run(database_url, story)


@on_both
def test_an_opaque_access_token_is_found_by_its_digest_with_its_scope(database_url):
    async def story(db):
        grant_id = await a_signed_in_person(db)

        def mint_opaque(_code, grant, profile):
            return minted(grant, profile, opaque=True)

        issued = await operations.redeem_code(db, token_digest(await a_code(db, grant_id)), accept, mint_opaque,
                                              code_audit)
        found = await operations.active_access_token_row(db, token_digest(issued["access_token"]), with_profile=True)
        assert found.row["scope"] == "openid profile email" and found.row["issued_at"] == NOW
        async with db.session() as session:
            assert await session.get(AccessToken, issued["access_token"]) is None  # never stored in clear

    run(database_url, story)


# -- clients kept in memory ------------------------------------------------------------------------------

async def register(db, client_id: str = "app") -> None:
    async with db.transaction() as session:
        session.add(Client(client_id=client_id, name="App", secret_hash=None, token_endpoint_auth_method="none",
                           redirect_uris=["https://app.example/cb"], post_logout_redirect_uris=[], jwks=None,
                           allowed_scopes=["openid"], allowed_upstreams=[], enabled=True, source="database",
                           mode="oidc", created_at=NOW, updated_at=NOW))


@on_both
def test_a_client_disabled_in_this_process_is_refused_at_once(database_url):
    async def story(db):
        await register(db)
        assert (await operations.get_client(db, "app")).name == "App"

        async with db.transaction() as session:
            await session.execute(update(Client).where(Client.client_id == "app").values(enabled=False))

        assert await operations.get_client(db, "app") is None
        assert (await operations.get_client(db, "app", enabled_only=False)).enabled is False

    run(database_url, story)


@on_both
def test_a_client_disabled_by_another_process_is_refused_once_the_version_is_checked(database_url, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(caches.time, "monotonic", lambda: clock[0])

    async def story(db):
        await register(db)
        assert await operations.get_client(db, "app") is not None
        elsewhere = Database(database_url)  # the CLI, or another worker
        try:
            async with elsewhere.transaction() as session:
                await session.execute(update(Client).where(Client.client_id == "app").values(enabled=False))
        finally:
            await elsewhere.close()

        assert await operations.get_client(db, "app") is not None  # kept: the documented bound
        clock[0] += caches.CHECK_EVERY
        assert await operations.get_client(db, "app") is None

    run(database_url, story)


@on_both
def test_a_client_registered_a_moment_ago_is_found_at_once(database_url):
    async def story(db):
        assert await operations.get_client(db, "late") is None
        await register(db, "late")
        assert (await operations.get_client(db, "late")).client_id == "late"

    run(database_url, story)


# -- a database that stops answering ---------------------------------------------------------------------

@pytest.mark.mariadb
def test_a_mariadb_that_never_answers_is_an_error_not_a_hang():
    """A server that accepts the connection and then says nothing (a hung host, a full disk) makes
    the operation fail within the connect timeout, so /readyz and the API can say so."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    url = f"mysql+aiomysql://root@127.0.0.1:{silent.getsockname()[1]}/nothing"

    async def story():
        db = Database(url)
        try:
            with pytest.raises(OperationalError):
                await db.ping()
        finally:
            await db.close()

    try:
        asyncio.run(story())
    finally:
        silent.close()
