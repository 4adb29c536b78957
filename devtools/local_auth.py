"""Local dev tokens: HS256 bearer tokens signed with this checkout's key, for `make run` and `sam local`."""

import time
from typing import Any

import jwt

from app import sam_local
from app.sam_local import ALGORITHM, AUDIENCE, ISSUER, MIN_SECRET_LENGTH, InsufficientScope
from devtools.template import load_template

__all__ = [
    "ALGORITHM",
    "AUDIENCE",
    "ISSUER",
    "MIN_SECRET_LENGTH",
    "SCOPE",
    "InsufficientScope",
    "issue_token",
]
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


def verify_token(secret: str, token: str, *, owner_claim: str = "sub") -> str | None:
    """The owner of a valid dev token with the API's scope (app.sam_local.verify_token)."""
    return sam_local.verify_token(secret, token, scope=SCOPE, owner_claim=owner_claim)
