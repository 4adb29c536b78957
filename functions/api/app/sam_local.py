"""`sam local` only: checks `make token`'s bearer tokens, which SAM CLI cannot (it skips JWT authorizers)."""

import os

from app.auth import Forbidden, TokenVerifier
from app.settings import get_settings

ISSUER = "items-api-local"
AUDIENCE = "items-api-local"
ALGORITHM = "HS256"
MIN_SECRET_LENGTH = 32


class InsufficientScope(Exception):
    """A valid token that is not an access token with the API's scope (API Gateway answers 403)."""


def verify_token(secret: str, token: str, *, scope: str, owner_claim: str = "sub") -> str | None:
    """The owner a valid access token with `scope` names; None if invalid (401), InsufficientScope (403)."""
    import jwt  # only local runs verify tokens: the deployed function never imports it

    from items_core.bearer import granted_scopes

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
    if claims.get("token_use", "access") != "access" or scope not in granted_scopes(claims):
        raise InsufficientScope(
            f"The token is not an access token with the scope {scope} (an ID token carries none)"
        )
    owner = claims.get(owner_claim)
    return owner if isinstance(owner, str) and owner else None


def local_token_verifier(secret: str) -> TokenVerifier:
    """Checks this checkout's HS256 dev tokens; the owner is the claim OWNER_CLAIM names."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"LOCAL_JWT_SECRET must have at least {MIN_SECRET_LENGTH} characters")

    def verify(token: str) -> str | None:
        settings = get_settings()
        try:
            return verify_token(
                secret, token, scope=settings.authorization_scope, owner_claim=settings.owner_claim
            )
        except InsufficientScope as error:
            raise Forbidden(str(error)) from None

    return verify


def sam_local_token_verifier() -> TokenVerifier | None:
    """The dev-token check when SAM CLI runs the function with a local key, else None (deployed)."""
    # SAM CLI sets AWS_SAM_LOCAL, Lambda never does; the template declares LOCAL_JWT_SECRET empty (SAM CLI
    # fills only declared variables), and preflight's E9011 refuses a template that sets either.
    secret = os.environ.get("LOCAL_JWT_SECRET", "")
    if os.environ.get("AWS_SAM_LOCAL") != "true" or not secret:
        return None
    return local_token_verifier(secret)
