"""Idempotency-Key for POST, PUT, PATCH and DELETE on /items: the ASGI side of app.store.idempotency.

Runs innermost, before routing: a replay must answer before the app runs
again. The record state machine and its reasons are in app.store.idempotency,
imported by the first request that carries a key (a cold start without one
never pays for it).
"""

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import NotAuthenticated, authenticate
from app.dependencies import get_dynamodb_client
from app.middleware.asgi_json import send_json, send_raw
from app.middleware.response_headers import request_id
from app.middleware.root_path import route_path, serves, under_prefix
from app.observability import get_logger
from app.settings import get_settings
from items_core.bearer import bearer_token

if TYPE_CHECKING:
    from app.store.idempotency import IdempotencyStore, StoredResponse

HEADER = b"idempotency-key"


_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def _key_error(send: Send, message: str, error_type: str) -> None:
    # The shape of FastAPI's validation errors, as the OpenAPI document declares for 422.
    error = {"type": error_type, "loc": ["header", "idempotency-key"], "msg": message}
    await send_json(send, 422, {"detail": [error]})


def _retryable(response: "StoredResponse") -> bool:
    """A 5xx, 409 or 429, or any answer with Retry-After: an outcome a retry may change."""
    return (
        response.status >= 500
        or response.status in {409, 429}
        or any(name.lower() == b"retry-after" for name, _ in response.headers)
    )


class IdempotencyMiddleware:
    """Applies Idempotency-Key to the write routes under `prefixes` (pure ASGI, innermost)."""

    def __init__(self, app: ASGIApp, *, prefixes: tuple[str, ...]) -> None:
        self.app = app
        self._prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_key = self._raw_key(scope)
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        bearer = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
        try:
            owner = authenticate(scope, bearer)
        except NotAuthenticated:
            await self.app(scope, receive, send)  # the app answers 401; nothing to remember
            return
        from app.store import idempotency as records  # first use only (see the module docstring)

        try:
            key = records.parse_key(raw_key)
        except records.InvalidKey as error:
            await _key_error(send, f"Idempotency-Key {error}", "value_error")
            return

        body = await self._read_body(receive)
        fingerprint = hashlib.sha256(headers.get(b"if-match", b"") + b"\n" + body).hexdigest()
        store = records.IdempotencyStore(get_dynamodb_client(), get_settings().idempotency_table_name)
        record_key = store.record_key(owner, scope["method"], route_path(scope), key)
        token = uuid.uuid4().hex
        result = store.claim(record_key, fingerprint, token, self._lock_seconds(scope))
        if isinstance(result, records.Replay):
            replayed = result.response
            await send_raw(
                send, replayed.status, [*replayed.headers, (b"idempotent-replayed", b"true")], replayed.body
            )
            return
        if isinstance(result, records.Mismatch):
            message = "Idempotency-Key was already used with a different request body"
            await _key_error(send, message, "idempotency_key_reused")
            return
        if isinstance(result, records.InProgress):
            detail = "A request with this Idempotency-Key is still in progress"
            extra = [(b"retry-after", str(result.retry_after).encode())]
            await send_json(send, 409, {"detail": detail}, extra)
            return
        await self._run_claimed(scope, body, send, store, record_key, token)

    async def _run_claimed(
        self,
        scope: Scope,
        body: bytes,
        send: Send,
        store: "IdempotencyStore",
        record_key: dict[str, Any],
        token: str,
    ) -> None:
        start: Message = {}
        chunks: list[bytes] = []

        async def receive_body() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, receive_body, capture)
        except Exception:
            # Give the key back so a retry runs again. This is the request's last
            # call either way (complete or release), so the retry budget holds.
            self._release_quietly(store, record_key, token, scope)
            raise
        from app.store.idempotency import ResponseTooLarge, StoredResponse

        response = StoredResponse(start["status"], list(start.get("headers", [])), b"".join(chunks))
        if _retryable(response):
            # Says "try again": a repeat with this key must run again, not replay this.
            self._release_quietly(store, record_key, token, scope)
        else:
            try:
                store.complete(record_key, token, response)
            except ResponseTooLarge as error:
                # Not stored: give the key back rather than replay something else later.
                get_logger().warning(
                    "Idempotent response too large to record; key released",
                    extra={"request_id": request_id(scope), "size": str(error)},
                )
                self._release_quietly(store, record_key, token, scope)
            except Exception:
                # The change happened: say so. A repeat after the lock lapses runs again.
                get_logger().warning(
                    "Could not record an idempotent response",
                    exc_info=True,
                    extra={"request_id": request_id(scope)},
                )
        await send_raw(send, response.status, response.headers, response.body)

    @staticmethod
    def _release_quietly(
        store: "IdempotencyStore", record_key: dict[str, Any], token: str, scope: Scope
    ) -> None:
        try:
            store.release(record_key, token)
        except Exception:
            get_logger().warning(
                "Could not release an idempotency key", exc_info=True, extra={"request_id": request_id(scope)}
            )

    def _raw_key(self, scope: Scope) -> bytes | None:
        if scope["type"] != "http" or scope["method"] not in _METHODS:
            return None
        if not under_prefix(route_path(scope), self._prefixes) or not serves(
            scope.get("app"), scope, scope["method"]
        ):
            return None  # the app answers 404 or 405: the method and path are judged before any header
        for name, value in scope["headers"]:
            if name == HEADER:
                return bytes(value)
        return None

    @staticmethod
    async def _read_body(receive: Receive) -> bytes:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    def _lock_seconds(scope: Scope) -> float:
        # Hold the key for as long as this invocation may still run.
        context = scope.get("aws.context")
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining):
            return max(1.0, float(remaining()) / 1000)
        from app.store.idempotency import DEFAULT_LOCK_SECONDS

        return DEFAULT_LOCK_SECONDS
