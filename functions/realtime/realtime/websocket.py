"""The WebSocket API's routes: ``$connect`` (authenticate, record), ``$disconnect`` (forget), ``$default``."""

import time
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger

from items_core.bearer import bearer_token
from items_core.dynamodb_errors import answer
from items_core.messages import INVALID_TOKEN, MISSING_TOKEN, owner_not_usable, reply_to, too_many_connections
from items_core.rows import owner_key_problem
from realtime.connections import connection_store
from realtime.settings import get_settings, require
from realtime.tokens import InvalidToken, KeysUnavailable, TokenVerifier, VerifiedToken

logger = Logger(service="items-realtime")


@lru_cache
def verifier() -> TokenVerifier:
    """The token verifier (its JWKS is fetched on first use, then cached)."""
    settings = get_settings()
    issuer = require(settings.jwt_issuer, "JWT_ISSUER")
    audiences = settings.audiences()
    require(",".join(audiences), "JWT_AUDIENCE")
    scope = require(settings.authorization_scope, "AUTHORIZATION_SCOPE")
    return TokenVerifier(
        issuer, audiences, settings.owner_claim, scope, settings.jwks_url, timeout=settings.http_timeout
    )


def _token(event: dict[str, Any]) -> str | None:
    # A browser cannot set headers on a WebSocket: it passes ?token=<JWT>.
    query = event.get("queryStringParameters") or {}
    if query.get("token"):
        return str(query["token"])
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    return bearer_token(headers.get("authorization"))


def _refuse(event: dict[str, Any], status: int, body: str, reason: str) -> dict[str, Any]:
    """The handshake's refusal: a body that says what to do, the precise reason only in the log."""
    context = event["requestContext"]
    logger.info(
        "connection refused",
        extra={"status": status, "reason": reason, "connection_id": context["connectionId"]},
    )
    return {
        "statusCode": status,
        "headers": {"X-Request-ID": str(context.get("requestId", ""))},
        "body": body,
    }


def on_connect(event: dict[str, Any]) -> dict[str, Any]:
    """Verify the token and record the connection with its owner."""
    connection_id = event["requestContext"]["connectionId"]
    token = _token(event)
    if token is None:
        return _refuse(event, 401, MISSING_TOKEN, "no token")
    try:
        verified = verifier().verify(token)
    except InvalidToken as error:
        return _refuse(event, 401, INVALID_TOKEN, str(error))
    except KeysUnavailable:
        logger.exception("token keys unavailable", extra={"connection_id": connection_id})
        return {"statusCode": 503, "body": "cannot verify tokens right now; retry"}
    problem = owner_key_problem(verified.owner)
    if problem:
        body = owner_not_usable(get_settings().owner_claim, problem)
        return _refuse(event, 403, body, "owner id cannot be stored")
    return _record(event, verified)


def _record(event: dict[str, Any], verified: VerifiedToken) -> dict[str, Any]:
    """Record the connection, unless its owner has as many open as allowed."""
    connection_id = event["requestContext"]["connectionId"]
    settings = get_settings()
    store = connection_store()
    try:
        if store.count_open(verified.owner, int(time.time())) >= settings.max_connections_per_owner:
            body = too_many_connections(settings.max_connections_per_owner)
            return _refuse(event, 429, body, "owner at the connection limit")
        store.add(verified.owner, connection_id, settings.connection_ttl_seconds, verified.expires_at)
    except Exception as error:
        if answer(error) is None:
            raise
        logger.warning("connection not recorded", extra={"connection_id": connection_id}, exc_info=True)
        return {"statusCode": 503, "body": "cannot record the connection right now; retry"}
    logger.info("connected", extra={"connection_id": connection_id})
    return {"statusCode": 200}


def on_disconnect(event: dict[str, Any]) -> dict[str, Any]:
    """Forget the connection (API Gateway sends this at most once, best effort)."""
    connection_id = event["requestContext"]["connectionId"]
    try:
        found = connection_store().disconnect(connection_id)
    except Exception as error:
        if answer(error) is None:
            raise
        # The record expires (TTL), and the notifier forgets it at its first 410 Gone.
        logger.warning("disconnect not recorded", extra={"connection_id": connection_id}, exc_info=True)
        return {"statusCode": 200}
    logger.info("disconnected", extra={"connection_id": connection_id, "recorded": found})
    return {"statusCode": 200}


def on_message(event: dict[str, Any]) -> dict[str, Any]:
    """Answer one client message through the $default route response (no posting to connections)."""
    body = event.get("body")
    if event.get("isBase64Encoded"):
        body = None  # a binary frame: answered with an error naming what to send
    return {"statusCode": 200, "body": reply_to(body)}


_ROUTES = {"$connect": on_connect, "$disconnect": on_disconnect}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point for every route of the WebSocket API."""
    route = event.get("requestContext", {}).get("routeKey")
    return _ROUTES.get(route, on_message)(event)
