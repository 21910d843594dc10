"""The OpenID Provider's endpoints (the OIDC front door)."""
