"""Who is calling: the owner whose items a request may see."""

from collections.abc import Callable
from typing import Any

from starlette.types import Scope

from app.settings import get_settings
from items_core.messages import owner_not_usable
from items_core.rows import owner_key_problem

TokenVerifier = Callable[[str], str | None]
"""A bearer token to the owner it names, or None for an invalid one."""


class NotAuthenticated(Exception):
    """The request reached the app without a verified principal."""


class Forbidden(NotAuthenticated):
    """A verified token that may not use the API: 403, naming why."""


class OwnerNotUsable(Forbidden):
    """The verified owner id cannot be stored (items_core.rows.owner_key_problem): 403, naming why."""


def owner_from_event(event: Any, owner_claim: str) -> str | None:
    """The owner from claims API Gateway verified, or None."""
    if not isinstance(event, dict):
        return None
    request_context = event.get("requestContext")
    authorizer = request_context.get("authorizer") if isinstance(request_context, dict) else None
    if not isinstance(authorizer, dict):
        return None
    # HTTP API (payload v2) nests the claims under `jwt`; REST API with Cognito (v1) does not.
    jwt_authorizer = authorizer.get("jwt")
    claims = jwt_authorizer.get("claims") if isinstance(jwt_authorizer, dict) else authorizer.get("claims")
    owner = claims.get(owner_claim) if isinstance(claims, dict) else None
    return owner if isinstance(owner, str) and owner else None


def token_verifier(scope: Scope) -> TokenVerifier | None:
    """The verifier the app was built with (local runs only), or None."""
    state = getattr(scope.get("app"), "state", None)
    verifier: TokenVerifier | None = getattr(state, "token_verifier", None)
    return verifier


def authenticate(scope: Scope, bearer_token: str | None) -> str:
    """The owner of this request (HTTP or WebSocket scope), or NotAuthenticated."""
    # Deployed, API Gateway's JWT authorizer has verified the token: this app never verifies one itself.
    owner = owner_from_event(scope.get("aws.event"), get_settings().owner_claim)
    verifier = token_verifier(scope)
    if owner is None and verifier is not None:  # make run, or sam local start-api
        owner = verifier(bearer_token) if bearer_token else None
    if owner is None:
        raise NotAuthenticated
    problem = owner_key_problem(owner)
    if problem:
        raise OwnerNotUsable(owner_not_usable(get_settings().owner_claim, problem))
    return owner
