"""Local auth mode: bearer tokens signed with a local key, for `make run` and `sam local`.

Deployed, API Gateway's JWT authorizer verifies tokens and this module is never
imported. Locally there is no API Gateway (and `sam local` skips JWT
authorizers), so when AUTH_MODE=local the app verifies HS256 tokens itself.
"""

import time

import jwt

ISSUER = "items-api-local"
AUDIENCE = "items-api-local"
ALGORITHM = "HS256"


def issue_token(secret: str, owner: str, *, owner_claim: str = "sub", ttl_seconds: int = 12 * 3600) -> str:
    """A token for `owner`, valid for `ttl_seconds`."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + ttl_seconds, owner_claim: owner}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str, *, owner_claim: str = "sub") -> str | None:
    """The owner named by a valid token, or None for any invalid, expired or foreign token."""
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
    owner = claims.get(owner_claim)
    return owner if isinstance(owner, str) and owner else None
