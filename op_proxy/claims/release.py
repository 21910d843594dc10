"""Scope → claim release (OIDC Core §5.4, plus our own scopes for the organisation and ThaID).

A person's profile is kept in the normalized shape of the old gateway (``firstName``, ``officeName``,
...) plus ThaID's own claims; what a client sees uses the standard OIDC names where one exists.
"""

from __future__ import annotations

# normalized profile field → claim name in ID tokens and userinfo
CLAIM_NAMES = {
    "name": "name",
    "firstName": "given_name",
    "lastName": "family_name",
    "username": "preferred_username",
    "email": "email",
    "id": "user_id",
    "department": "department",
    "position": "position",
    "campus": "campus",
    "officeName": "office_name",
    "facultyId": "faculty_id",
    "departmentId": "department_id",
    "campusId": "campus_id",
    "groups": "groups",
}

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "openid": ("sub",),
    "profile": ("name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
                "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
    "org": ("user_id", "department", "position", "campus", "office_name", "faculty_id",
            "department_id", "campus_id"),
    "groups": ("groups",),
    "thaid": ("pid", "title", "title_en", "name_en", "given_name_en", "middle_name_en",
              "family_name_en", "ial", "smartcard_code", "date_of_issuance", "date_of_expiry"),
}

SUPPORTED_SCOPES = tuple(SCOPE_CLAIMS)
# The national ID is released only to clients an admin allowed the ``thaid`` scope.
DEFAULT_CLIENT_SCOPES = tuple(s for s in SUPPORTED_SCOPES if s != "thaid")
SUPPORTED_CLAIMS = tuple(dict.fromkeys(c for claims in SCOPE_CLAIMS.values() for c in claims))


def client_scopes(allowed_scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(allowed_scopes) if allowed_scopes else DEFAULT_CLIENT_SCOPES


def grantable_scopes(requested: list[str], allowed_scopes) -> list[str]:
    """RFC 6749 §3.3: we may grant less than asked; scopes the client may not have are dropped."""
    allowed = set(client_scopes(allowed_scopes))
    return [s for s in dict.fromkeys(requested) if s in allowed and s in SCOPE_CLAIMS]


def oidc_claims(profile: dict) -> dict:
    """The person's claims under their OIDC names (before any release decision)."""
    claims = {}
    for key, value in profile.items():
        claims[CLAIM_NAMES.get(key, key)] = value
    return {k: v for k, v in claims.items() if v not in (None, "", [])}


def releasable_claim_names(scopes: list[str]) -> set[str]:
    return {claim for scope in scopes for claim in SCOPE_CLAIMS.get(scope, ())}


def requested_claim_names(claims_parameter: dict | None) -> set[str]:
    """Every claim a ``claims`` parameter asks for, in the ID token or at userinfo."""
    return {name for member in (claims_parameter or {}).values() for name in member}


def scopes_for_claims(claim_names: set[str], allowed_scopes) -> list[str]:
    """The scopes, of those the client may have, whose claims ``release`` adds for claims asked for
    one by one: what a person consents to when an application asks for claims that way."""
    allowed = set(client_scopes(allowed_scopes))
    wanted = set(claim_names) - {"sub"}
    return [scope for scope, claims in SCOPE_CLAIMS.items() if scope in allowed and wanted & set(claims)]


def release(profile: dict, scopes: list[str], requested_claims: dict | None, allowed_scopes) -> dict:
    """Claims for the granted scopes, plus individually requested ones (``claims`` parameter,
    OIDC Core §5.5) that the client's allowed scopes cover; never more than the client may see."""
    available = oidc_claims(profile)
    names = releasable_claim_names(scopes)
    if requested_claims:
        names |= set(requested_claims) & releasable_claim_names(list(client_scopes(allowed_scopes)))
    names.discard("sub")
    return {name: available[name] for name in sorted(names) if name in available}
