"""Bearer tokens (RFC 6750) as every function reads them: the header's token and the owner claim."""

from typing import Any, Literal

# Only identifiers the user cannot change and the provider never reuses: a mutable claim such as
# email would let a user who sets it to another's value take that owner's items.
OwnerClaim = Literal["sub", "oid"]
"""Claims that may name an owner."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def granted_scopes(claims: dict[str, Any]) -> set[str]:
    """The scopes a token grants, read as API Gateway's JWT authorizer does: ``scope`` or ``scp``."""
    granted: set[str] = set()
    for claim in ("scope", "scp"):
        value = claims.get(claim)
        if isinstance(value, str):
            granted.update(value.split())
        elif isinstance(value, list):
            granted.update(scope for scope in value if isinstance(scope, str))
    return granted
