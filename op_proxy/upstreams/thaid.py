"""``thaid``: ThaID, the Thai national digital ID (DOPA). A generic OIDC upstream plus what is
particular to ThaID (UPSTREAMS.md): ES256 ID tokens, client_secret_basic only, no ``iss`` in the
callback, ``address`` as a string or an object, and an introspection endpoint outside discovery."""

from __future__ import annotations

import httpx

from op_proxy.upstreams.oidc import OidcConnector, UpstreamRefused, UpstreamUnavailable


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

    async def introspect(self, access_token: str) -> dict:
        """POST /api/v2/oauth2/introspect/ with Basic auth; answers {active, sub (= pid), scope}."""
        url = self.config.introspection_endpoint
        if not url:
            raise UpstreamRefused("no introspection_endpoint configured for this upstream")
        try:
            response = await self.http.post(url, data={"token": access_token}, timeout=self.config.timeout,
                                            auth=httpx.BasicAuth(self.config.client_id, self.config.client_secret))
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"introspection: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise UpstreamRefused(f"introspection: HTTP {response.status_code}")
        return response.json()
