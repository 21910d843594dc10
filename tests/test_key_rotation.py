"""An administrator rotates op-proxy's signing keys while applications keep signing people in.

Applications verify ID tokens with the JWKS they fetch from op-proxy; a rotation must never leave
them holding a token signed by a key they cannot find.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import httpx
import pytest

from op_proxy.keys.keyring import InvalidToken, Keyring
from tests.support.rp import demo_id_token, discovery, verify_id_token
from tests.support.server import ROOT

# -- helpers -------------------------------------------------------------------------------------

def op_proxy(server, *args: str) -> str:
    """The admin runs ``op-proxy --config <the server's config> <args>`` next to the running server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OP_PROXY_")}
    result = subprocess.run([sys.executable, "-m", "op_proxy.cli", "--config", str(server.config_path), *args],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def kid_of(token: str) -> str:
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def published_kids(server) -> list[str]:
    return [key["kid"] for key in httpx.get(discovery(server.issuer)["jwks_uri"]).json()["keys"]]


def still_verifies(server, id_token: str) -> bool:
    return verify_id_token(server.issuer, id_token, "demo")["preferred_username"] == "demo"


def key_files(directory) -> set[str]:
    return {path.name.removesuffix(".jwk.json") for path in directory.glob("*.jwk.json")}


# -- through the CLI, with a running server ----------------------------------------------------------

def test_a_planned_rotation_publishes_the_new_key_before_it_signs(make_server):
    server = make_server()
    before = demo_id_token(server)
    old_kid = kid_of(before)
    assert published_kids(server) == [old_kid]

    output = op_proxy(server, "keys", "rotate")

    (new_kid,) = set(published_kids(server)) - {old_kid}
    assert new_kid in output
    assert old_kid in published_kids(server), "the key that signed live tokens was withdrawn"
    assert still_verifies(server, before)
    after = demo_id_token(server)
    assert kid_of(after) == old_kid, "the new key signs before applications could have cached it"
    assert still_verifies(server, after)


def test_an_emergency_rotation_signs_at_once_and_old_tokens_still_verify(make_server):
    server = make_server()
    pid = server.process.pid
    before = demo_id_token(server)
    old_kid = kid_of(before)

    output = op_proxy(server, "keys", "rotate", "--now")

    after = demo_id_token(server)
    new_kid = kid_of(after)
    assert new_kid != old_kid and new_kid in output
    assert server.process.pid == pid and server.process.poll() is None  # no restart needed
    assert set(published_kids(server)) == {old_kid, new_kid}
    assert still_verifies(server, before)
    assert still_verifies(server, after)

    listed = op_proxy(server, "keys", "list")
    assert f"{new_kid}\tsigning" in listed and f"{old_kid}\tretired" in listed


def test_keys_survive_a_restart(make_server):
    server = make_server()
    before = demo_id_token(server)
    kid = kid_of(before)

    server.restart()

    assert published_kids(server) == [kid]
    assert kid_of(demo_id_token(server)) == kid
    assert still_verifies(server, before)


# -- the keyring itself, with the clock passed in ----------------------------------------------------

def test_a_retired_key_stays_published_until_its_tokens_expire_then_prune_removes_it(tmp_path):
    directory = tmp_path / "keys"
    keyring = Keyring(directory, publish_ahead=600, max_token_lifetime=120)
    old = keyring.ensure_signing_key()
    new = keyring.rotate()
    switch = new.signs_from
    assert 599 <= switch - new.created_at <= 600  # publish_ahead after it was made

    def status(now):
        return {s.key.kid: s.status for s in keyring.states(now=now)}

    def published(now):
        return {k.kid for k in keyring.published(now=now)}

    # Before the switch: the new key is published ("next") but the old one signs.
    assert status(switch - 1) == {old.kid: "signing", new.kid: "next"}
    assert published(switch - 1) == {old.kid, new.kid}
    assert keyring.signing_key(now=switch - 1).kid == old.kid

    # At the switch the new key signs; the old one is retired but still published.
    assert status(switch) == {old.kid: "retired", new.kid: "signing"}
    assert keyring.signing_key(now=switch).kid == new.kid
    (retired,) = [s for s in keyring.states(now=switch) if s.status == "retired"]
    assert retired.retired_at == switch and retired.published_until == switch + 120

    # While tokens it signed may still be alive, nothing is removed.
    last_second = switch + 119
    assert published(last_second) == {old.kid, new.kid}
    assert keyring.prune(now=last_second) == []
    assert key_files(directory) == {old.kid, new.kid}

    # Once the last of them has expired, it is withdrawn and its file removed.
    expired = switch + 120
    assert published(expired) == {new.kid}
    assert keyring.prune(now=expired) == [old.kid]
    assert key_files(directory) == {new.kid}
    assert status(expired) == {new.kid: "signing"}


def test_an_immediate_rotation_keeps_the_old_key_for_the_token_lifetime(tmp_path):
    directory = tmp_path / "keys"
    keyring = Keyring(directory, publish_ahead=600, max_token_lifetime=120)
    old = keyring.ensure_signing_key()
    token = keyring.sign({"sub": "someone"})

    new = keyring.rotate(immediately=True)

    assert keyring.signing_key().kid == new.kid
    assert kid_of(keyring.sign({"sub": "someone"})) == new.kid
    assert keyring.verify(token)[1] == {"sub": "someone"}  # the old key still verifies what it signed
    assert {k["kid"] for k in keyring.jwks()["keys"]} == {new.kid, old.kid}
    assert keyring.prune(now=new.signs_from + 119) == []
    assert keyring.prune(now=new.signs_from + 120) == [old.kid]
    assert key_files(directory) == {new.kid}


def test_another_keyring_on_the_same_directory_sees_a_rotation(tmp_path):
    """Two processes (or the CLI and a server) share keys through the directory alone."""
    directory = tmp_path / "keys"
    server_side = Keyring(directory, publish_ahead=600, max_token_lifetime=120)
    admin_side = Keyring(directory, publish_ahead=600, max_token_lifetime=120)
    first = server_side.ensure_signing_key()
    assert admin_side.signing_key().kid == first.kid

    rotated = admin_side.rotate(immediately=True)

    assert server_side.signing_key().kid == rotated.kid
    assert {k.kid for k in server_side.published()} == {first.kid, rotated.kid}


def test_a_token_checked_before_is_refused_once_its_key_is_withdrawn(tmp_path):
    """Each process checks a token's signature once, then remembers it (a resource server asks about
    the same access token many times): a remembered token must not outlive its key."""
    keyring = Keyring(tmp_path / "keys", publish_ahead=600, max_token_lifetime=120)
    keyring.ensure_signing_key()
    token = keyring.sign({"sub": "someone"})
    assert keyring.verify(token)[1] == {"sub": "someone"}
    assert keyring.verify(token)[1] == {"sub": "someone"}  # remembered

    header, payload, signature = token.split(".")
    forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    for tampered in (f"{header}.{forged}.{signature}", f"{header}.{payload}.{signature[:-4]}AAAA"):
        with pytest.raises(InvalidToken):
            keyring.verify(tampered)

    new = keyring.rotate(immediately=True)
    assert keyring.verify(token)[1] == {"sub": "someone"}  # retired, still published for its tokens
    keyring.prune(now=new.signs_from + 120)  # withdrawn: its file is gone
    with pytest.raises(InvalidToken):
        keyring.verify(token)


def test_a_new_keys_directory_is_open_to_op_proxy_alone(tmp_path):
    keyring = Keyring(tmp_path / "keys")
    keyring.ensure_signing_key()
    keyring.data_key()
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    assert {path.stat().st_mode & 0o777 for path in (tmp_path / "keys").iterdir()} == {0o600}
