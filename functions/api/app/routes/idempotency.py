"""Idempotency-Key on write routes, after routing: claimed by a dependency, recorded by the route class."""

import hashlib
import re
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError

from app.blocking import run_blocking
from app.dependencies import CurrentOwner, get_idempotency_store, get_owner_rates
from app.limits import RateLimited
from app.observability import get_logger
from app.routes.owner_route import OwnerRoute
from app.store import idempotency as records

# Printable ASCII without outer space (HTTP strips it), and not the empty quoted string.
# Compiled: Python's engine (pydantic's own has no look-ahead).
_KEY_PATTERN = re.compile('^(?!""$)[!-~]([ -~]*[!-~])?$')


@dataclass(frozen=True)
class _Claim:
    store: records.IdempotencyStore
    record_key: dict[str, Any]
    token: str


class Replay(Exception):
    """The key already completed: its stored response is the answer."""

    def __init__(self, stored: records.StoredResponse) -> None:
        self.stored = stored


async def replay_response(request: Request, exc: Exception) -> Response:
    """The stored response of a key that already completed, marked as a replay."""
    stored = exc.stored if isinstance(exc, Replay) else None
    if stored is None:
        raise exc
    response = Response(stored.body, status_code=stored.status)
    response.raw_headers = [*stored.headers, (b"idempotent-replayed", b"true")]
    return response


def _route_path(request: Request) -> str:
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _lock_seconds(request: Request) -> float:
    # Hold the key for as long as this invocation may still run.
    remaining = getattr(request.scope.get("aws.context"), "get_remaining_time_in_millis", None)
    return max(1.0, remaining() / 1000) if callable(remaining) else records.DEFAULT_LOCK_SECONDS


async def claim_idempotency_key(
    request: Request,
    owner: CurrentOwner,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=records.MAX_KEY_LENGTH + 2,  # a quoted Structured Field string may add two quotes
            pattern=_KEY_PATTERN,
            description=(
                "Makes a retry safe: a repeat with the same key and body within 24 h replays the first "
                "response (with `Idempotent-Replayed: true`); 1-255 printable ASCII characters, bare or "
                'as a quoted string ("…").'
            ),
            examples=["9b2f0c1e-5d4a-4c3b-8e7f-6a5b4c3d2e1f"],
        ),
    ] = None,
) -> None:
    """Claim the key, spending one of the owner's keys (429), or answer (replay, 409, 422)."""
    if idempotency_key is None:
        return
    key = idempotency_key
    if len(key) >= 2 and key.startswith('"') and key.endswith('"'):
        key = key[1:-1]
    if len(key) > records.MAX_KEY_LENGTH:
        _key_error(f"Idempotency-Key must be at most {records.MAX_KEY_LENGTH} characters", "string_too_long")
    body = await request.body() if request.method in {"POST", "PUT", "PATCH"} else b""
    fingerprint = hashlib.sha256(
        request.headers.get("if-match", "").encode("latin-1") + b"\n" + body
    ).hexdigest()
    store = get_idempotency_store()
    record_key = store.record_key(owner, request.method, _route_path(request), key)
    token = uuid.uuid4().hex
    result = await run_blocking(store.claim, record_key, fingerprint, token, _lock_seconds(request))
    if isinstance(result, records.Replay):
        raise Replay(result.response)
    if isinstance(result, records.Mismatch):
        message = "Idempotency-Key was already used with a different request (body or If-Match)"
        _key_error(message, "idempotency_key_reused")
    if isinstance(result, records.InProgress):
        raise HTTPException(
            409,
            "A request with this Idempotency-Key is still in progress",
            headers={"Retry-After": str(result.retry_after)},
        )
    # A new key's record is kept for a day: the owner's hourly allowance bounds them. A replay, a
    # reused key and a key in progress claim nothing, so they cost nothing (a retry always learns
    # what became of its request).
    try:
        await run_blocking(get_owner_rates().take, owner, "keys")
    except RateLimited:  # a 429 (app.routes.errors): the key is given back first
        await run_blocking(store.release, record_key, token)
        raise
    request.state.idempotency_claim = _Claim(store, record_key, token)  # recorded by IdempotentRoute


def _key_error(message: str, error_type: str) -> None:
    raise RequestValidationError([{"type": error_type, "loc": ("header", "idempotency-key"), "msg": message}])


IdempotencyKey = Depends(claim_idempotency_key)


def _kept(response: Response) -> bool:
    """Whether an answer is the key's for good: not one a retry may change, nor a 422 (refused as sent)."""
    status = response.status_code
    # 403 too: a full items quota has room once items are deleted.
    return status < 500 and status not in {403, 409, 422, 429} and "retry-after" not in response.headers


def _record_quietly(request: Request, claim: _Claim, response: Response | None) -> None:
    """Store the answer as the key's, or give the key back (no answer, or not one to keep)."""
    try:
        if response is not None and _kept(response):
            stored = records.StoredResponse(
                response.status_code, list(response.raw_headers), bytes(response.body)
            )
            try:
                claim.store.complete(claim.record_key, claim.token, stored)
                return
            except records.ResponseTooLarge:
                pass  # not stored: give the key back rather than replay something else later
        claim.store.release(claim.record_key, claim.token)
    except Exception:  # the answer is sent anyway; a record left IN_PROGRESS lapses with its lock
        get_logger().warning(
            "Could not record or release an Idempotency-Key",
            exc_info=True,
            extra={"request_id": getattr(request.state, "request_id", None)},
        )


def _answer_to(request: Request, error: Exception) -> Callable[..., Any] | None:
    """The app's exception handler for `error`, as Starlette's ExceptionMiddleware would pick it."""
    handlers: dict[Any, Callable[..., Any]] = request.app.exception_handlers
    return next((handlers[cls] for cls in type(error).__mro__ if cls in handlers), None)


class IdempotentRoute(OwnerRoute):
    """An OwnerRoute that records the answer of a request holding an Idempotency-Key."""

    # The handler, not the ASGI app: FastAPI builds an included route's app from get_route_handler alone.
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def idempotent_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as error:
                claim = getattr(request.state, "idempotency_claim", None)
                exception_handler = _answer_to(request, error) if claim else None
                if claim is None or exception_handler is None or isinstance(error, Replay):
                    if claim is not None:
                        await run_blocking(_record_quietly, request, claim, None)
                    raise
                try:
                    response = await exception_handler(request, error)
                except Exception:  # the handler passed it on (a bug, for the edge's 500): give the key back
                    await run_blocking(_record_quietly, request, claim, None)
                    raise
            claim = getattr(request.state, "idempotency_claim", None)
            if claim is not None:
                await run_blocking(_record_quietly, request, claim, response)
            return response

        return idempotent_handler
