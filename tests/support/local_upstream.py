"""Upstreams of ``kind = "local"`` as a test writes them into its config: people who sign in with a
username and the password "demo", and the claims the upstream says of them."""

from __future__ import annotations

from tests.support.server import DEMO_PASSWORD_HASH, toml_value


def local_upstream(name: str, display_name: dict[str, str], people: dict[str, dict]) -> str:
    """The ``[upstreams.<name>]`` section, with one ``users`` entry per username in ``people``."""
    lines = [f"[upstreams.{name}]", 'kind = "local"', f"display_name = {toml_value(display_name)}", ""]
    for username, claims in people.items():
        lines += [f"[[upstreams.{name}.users]]", f"username = {toml_value(username)}",
                  f"password_hash = {toml_value(DEMO_PASSWORD_HASH)}", f"claims = {toml_value(claims)}", ""]
    return "\n".join(lines)
