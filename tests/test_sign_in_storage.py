"""The storage operations of a sign-in (``op_proxy.storage.sign_ins``), each run on SQLite and on
MariaDB: a pending sign-in finishes once, whatever races it; a person signing in again in the same
browser keeps their session, someone else ends it; an upstream's state answers one callback.
"""

from __future__ import annotations

import asyncio
import time

from cryptography.fernet import Fernet

from op_proxy.security import random_token, token_digest
from op_proxy.signin.pending import AdminTestSignIn, OidcRequest, UpstreamTestResult, from_row, new_pending, to_row
from op_proxy.storage import sign_ins
from op_proxy.upstreams.base import Identity
from tests.test_storage import on_both, run

DATA_KEY = Fernet.generate_key()
SOMCHAI = Identity(upstream="local", subject="somchai", profile={"name": "Somchai"}, acr="1", amr=["pwd"])
SUDA = Identity(upstream="local", subject="suda", profile={"name": "Suda"}, acr="1", amr=["pwd"])


async def write(db, step, *args):
    def operation(connection):
        with db.writing(connection):
            return step(connection, *args)

    return await db.run(operation)


async def sign_in(db, identity: Identity, cookie: str | None = None) -> sign_ins.Recorded:
    def operation(connection):
        current = sign_ins.find_session(connection, token_digest(cookie)) if cookie else None
        account = sign_ins.account_of(connection, identity)
        with db.writing(connection):
            return sign_ins.record_sign_in(connection, identity, current, cookie, account, 3600, DATA_KEY)

    return await db.run(operation)


@on_both
def test_a_pending_sign_in_is_kept_as_its_front_door_made_it_and_finishes_once(database_url):
    async def story(db):
        request = OidcRequest(client_id="app", redirect_uri="https://app.example/cb", state="s-1",
                              scope=["openid", "email"], prompt=["login"], max_age=60, claims={"userinfo": {}},
                              code_challenge="c" * 43, code_challenge_method="S256", ui_locales="th")
        pending = new_pending(request, "browser-1", 900)
        await write(db, sign_ins.keep_pending, to_row(pending))
        found = from_row(pending.id, await db.run(sign_ins.find_pending, pending.digest))
        assert found.request == request and found.belongs_to("browser-1") and not found.belongs_to("browser-2")
        assert found.finished_at is None

        finishing = await asyncio.gather(*(write(db, sign_ins.finish_pending, pending.digest, f"answer-{n}")
                                           for n in range(4)))
        assert sorted(finishing) == [False, False, False, True]
        finished = from_row(pending.id, await db.run(sign_ins.find_pending, pending.digest))
        assert finished.finished_at is not None and finished.answer.startswith("answer-")

    run(database_url, story)


@on_both
def test_an_admin_test_result_is_read_back_as_it_was_written(database_url):
    async def story(db):
        pending = new_pending(AdminTestSignIn(upstream="staff", idp_hint="staff", admin="root"), "browser-1", 900)
        await write(db, sign_ins.keep_pending, to_row(pending))
        result = UpstreamTestResult(sub="person-1", upstream="staff", acr=None, amr=["pwd"], at=int(time.time()))
        done = AdminTestSignIn(upstream="staff", idp_hint="staff", admin="root", result=result)
        await write(db, sign_ins.save_params, pending.digest, to_row(new_pending(done, "b", 1))["params"])
        found = from_row(pending.id, await db.run(sign_ins.find_pending, pending.digest))
        assert found.request.result == result and found.client_id == "(admin test)"

    run(database_url, story)


@on_both
def test_the_same_person_keeps_their_session_and_someone_else_ends_it(database_url):
    async def story(db):
        first = await sign_in(db, SOMCHAI)
        again = await sign_in(db, SOMCHAI, first.cookie)
        assert again.cookie == first.cookie and again.session.sid == first.session.sid
        assert again.account.sub == first.account.sub

        signed_in = await db.run(sign_ins.find_signed_in, token_digest(first.cookie))
        assert signed_in is not None and signed_in[1].profile == {"name": "Somchai"}

        other = await sign_in(db, SUDA, first.cookie)
        assert other.cookie != first.cookie and other.account.sub != first.account.sub
        assert await db.run(sign_ins.find_signed_in, token_digest(first.cookie)) is None  # ended
        ended = await db.run(sign_ins.find_session, token_digest(first.cookie))
        assert ended.ended_at is not None

        # A session ended meanwhile (a sign-out in another tab) stays ended: a new one is made.
        back = await sign_in(db, SUDA, other.cookie)
        await write(db, sign_ins.end_session, back.session, "logout")
        after = await sign_in(db, SUDA, other.cookie)
        assert after.cookie != other.cookie and after.session.sid != back.session.sid

    run(database_url, story)


@on_both
def test_an_upstream_state_answers_one_callback(database_url):
    async def story(db):
        state = random_token(24)
        now = int(time.time())
        await write(db, sign_ins.remember_upstream_login, {
            "state_digest": token_digest(state), "login_id": "login-1", "upstream": "staff", "nonce": "n",
            "code_verifier": "v", "created_at": now, "expires_at": now + 60})
        answers = await asyncio.gather(*(write(db, sign_ins.consume_upstream_login, token_digest(state))
                                         for _ in range(3)))
        kept = [answer for answer in answers if answer is not None]
        assert len(kept) == 1 and kept[0].login_id == "login-1" and kept[0].upstream == "staff"
        assert await write(db, sign_ins.consume_upstream_login, token_digest("never-sent")) is None

    run(database_url, story)


@on_both
def test_consent_adds_to_what_was_allowed_before(database_url):
    async def story(db):
        assert await db.run(sign_ins.consented_scopes, "app", "person-1") is None
        await write(db, sign_ins.add_consent, "app", "person-1", ["openid", "email"])
        await write(db, sign_ins.add_consent, "app", "person-1", ["openid", "profile"])
        assert await db.run(sign_ins.consented_scopes, "app", "person-1") == ["email", "openid", "profile"]

    run(database_url, story)
