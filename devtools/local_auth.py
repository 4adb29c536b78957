"""Local dev tokens: HS256 bearer tokens signed with this checkout's key, for `make run`.

Deployed, API Gateway's JWT authorizer verifies tokens and this module is not
in the artifact. Locally there is no API Gateway, so devtools.local_app builds
the app with a verifier of these tokens.
"""

import time
from typing import Any

import jwt

from devtools.template import load_template
from items_core.bearer import granted_scopes

ISSUER = "items-api-local"
AUDIENCE = "items-api-local"
ALGORITHM = "HS256"
MIN_SECRET_LENGTH = 32
# The scope the deployed routes require (template.yaml's AuthorizationScope default).
SCOPE: str = load_template()["Parameters"]["AuthorizationScope"]["Default"]


def issue_token(
    secret: str, owner: str, *, owner_claim: str = "sub", ttl_seconds: int = 12 * 3600, **claims: Any
) -> str:
    """An access token for `owner` with the API's scope, valid for `ttl_seconds`; `claims` override."""
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
        "token_use": "access",
        "scope": SCOPE,
        owner_claim: owner,
        **claims,
    }
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm=ALGORITHM)


class InsufficientScope(Exception):
    """A valid token that is not an access token with the API's scope (API Gateway answers 403)."""


def verify_token(secret: str, token: str, *, owner_claim: str = "sub") -> str | None:
    """The owner named by a valid access token with the API's scope; None for an invalid token (401),
    InsufficientScope for a valid one without the scope (403), as API Gateway answers them."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "iss", "aud", owner_claim]},
        )
    except jwt.PyJWTError:
        return None
    if claims.get("token_use", "access") != "access" or SCOPE not in granted_scopes(claims):
        raise InsufficientScope(
            f"The token is not an access token with the scope {SCOPE} (an ID token carries none)"
        )
    owner = claims.get(owner_claim)
    return owner if isinstance(owner, str) and owner else None
