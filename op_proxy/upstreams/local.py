"""``local``: people defined in the config file with argon2-hashed passwords (development, demos,
tests; like Dex's static passwords). They type their password into op-proxy's own password form."""

from __future__ import annotations

from functools import cache

from op_proxy.config import UpstreamSettings
from op_proxy.security import hash_secret, random_token, verify_secret
from op_proxy.upstreams.base import Identity, LoginFailed, PasswordConnector


@cache
def _made_up_hash() -> str:
    # Made when first needed, not on import: every process (each CLI command included) would pay an
    # argon2 hash for it.
    return hash_secret(random_token())


class LocalConnector(PasswordConnector):
    kind = "local"

    def __init__(self, settings: UpstreamSettings, **_context):
        self.name = settings.name
        self.display_name = settings.display_name
        self.users = {user.username: user for user in settings.users}
        # Checked when the username is unknown, so that a wrong username costs exactly what a wrong
        # password does: a configured person's own hash (the same argon2 settings), else a made-up one.
        self._decoy_hash = settings.users[0].password_hash if settings.users else None

    async def login(self, username: str, password: str) -> Identity:
        username = username.strip()
        user = self.users.get(username)
        valid = await verify_secret(user.password_hash if user else self._decoy_hash or _made_up_hash(), password)
        if user is None or not valid:
            raise LoginFailed("wrong_password")
        return Identity(upstream=self.name, subject=username, profile=dict(user.claims), acr="1", amr=["pwd"])
