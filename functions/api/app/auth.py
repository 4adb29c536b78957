"""Who is calling: the owner whose items a request may see."""

from typing import Any

from app.settings import Settings


class NotAuthenticated(Exception):
    """The request reached the app without a verified principal."""


def owner_from_event(event: Any, owner_claim: str) -> str | None:
    """The owner from claims API Gateway verified, or None.

    HTTP API (payload v2) puts JWT authorizer claims at
    ``requestContext.authorizer.jwt.claims``; REST API with a Cognito authorizer
    (payload v1) at ``requestContext.authorizer.claims``. Function URL and ALB
    events carry no claims.
    """
    if not isinstance(event, dict):
        return None
    request_context = event.get("requestContext")
    authorizer = request_context.get("authorizer") if isinstance(request_context, dict) else None
    if not isinstance(authorizer, dict):
        return None
    jwt_authorizer = authorizer.get("jwt")
    claims = jwt_authorizer.get("claims") if isinstance(jwt_authorizer, dict) else authorizer.get("claims")
    owner = claims.get(owner_claim) if isinstance(claims, dict) else None
    return owner if isinstance(owner, str) and owner else None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def authenticate(settings: Settings, event: Any, bearer_token: str | None) -> str:
    """The owner of this request, or NotAuthenticated."""
    if settings.auth_mode == "local":
        from app.local_auth import verify_token  # only local runs pay for the JWT library

        secret = settings.local_jwt_secret
        owner = (
            verify_token(secret.get_secret_value(), bearer_token, owner_claim=settings.owner_claim)
            if (secret and bearer_token)
            else None
        )
    else:
        owner = owner_from_event(event, settings.owner_claim)
    if owner is None:
        raise NotAuthenticated
    return owner
