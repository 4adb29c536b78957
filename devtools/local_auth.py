"""Local dev tokens: HS256 bearer tokens signed with this checkout's key, for `make run`.

Deployed, API Gateway's JWT authorizer verifies tokens and this module is not
in the artifact. Locally there is no API Gateway, so devtools.local_app builds
the app with a verifier of these tokens.
"""

import time

import jwt

ISSUER = "items-api-local"
AUDIENCE = "items-api-local"
ALGORITHM = "HS256"
MIN_SECRET_LENGTH = 32


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
