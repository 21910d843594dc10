"""``thaid``: ThaID, the Thai national digital ID (DOPA). A generic OIDC upstream plus what is
particular to ThaID (UPSTREAMS.md): ES256 ID tokens, client_secret_basic only, no ``iss`` in the
callback, ``address`` as a string or an object, and an introspection endpoint outside discovery (the
``introspection_endpoint`` setting, used by the generic connector when ``introspect_at_sign_in`` is on)."""

from __future__ import annotations

from op_proxy.upstreams.oidc import OidcConnector


class ThaidConnector(OidcConnector):
    kind = "thaid"

    def normalized_profile(self, claims: dict) -> dict:
        profile = super().normalized_profile(claims)
        address = profile.get("address")
        if isinstance(address, str):
            # OIDC Core §5.1.1: address is an object; ThaID's older documents send a plain string.
            profile["address"] = {"formatted": address}
        if "name" not in profile and (claims.get("given_name") or claims.get("family_name")):
            profile["name"] = " ".join(p for p in (claims.get("given_name"), claims.get("family_name")) if p)
        return profile
