"""What every request gets before routing and after its answer: the app's one ASGI middleware."""

import asyncio
import json
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.blocking import run_blocking_calls_inline
from app.observability import REFUSED_HANDSHAKE, get_logger, log_request
from app.owner_reference import owner_reference
from app.settings import get_settings

# Where the per-owner resources live: their responses are never cached. A new resource adds its prefix.
PRIVATE_PREFIXES = ("/items",)
_API_POLICY = b"default-src 'none'; frame-ancestors 'none'"
# Swagger UI and ReDoc load their scripts and styles from this API (app/routes/docs.py)
# and run an inline bootstrap script; ReDoc starts a worker from a blob URL. No other host.
_DOCS_POLICY = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
    b"frame-ancestors 'none'"
)
_DOCS_PATHS = ("/docs", "/redoc")
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def client_prefix(event: Any, path: str) -> tuple[str, str]:
    """Split the path the client requested into (stage prefix, path the app routes on)."""
    context = event.get("requestContext") if isinstance(event, dict) else None
    if not isinstance(context, dict):
        return "", path
    # HTTP API (v2) and Function URLs: a named stage stays in the path (/dev/items/1); $default adds none.
    if event.get("version") == "2.0":
        stage = context.get("stage")
        if isinstance(stage, str) and stage and stage != "$default":
            prefix = f"/{stage}"
            if path == prefix or path.startswith(prefix + "/"):
                return prefix, path[len(prefix) :] or "/"
        return "", path
    # REST API (payload v1): `path` lacks the stage, requestContext.path has it (/Prod/items/1).
    client_path = context.get("path")
    if isinstance(client_path, str) and client_path != path and client_path.endswith(path):
        return client_path[: -len(path)].rstrip("/"), path
    return "", path


# A request body that stops arriving for this long is answered 408 (local servers only: API
# Gateway hands Lambda whole bodies). docs/configuration.md, "make run".
REQUEST_BODY_TIMEOUT_SECONDS = 10.0
# Logged for a request whose client went away before its answer (nginx's code): it got nothing.
CLIENT_CLOSED_REQUEST = 499


class _ClientBody:
    """The request's receive channel, noting how a client ended it early (under a local server only)."""

    def __init__(self, receive: Receive, *, local_server: bool) -> None:
        self._receive = receive
        self._local_server = local_server
        self.ended = ""  # "aborted": the client went away before its answer; "stalled": its body did

    async def __call__(self) -> Message:
        if not self._local_server:
            return await self._receive()
        try:
            message = await asyncio.wait_for(self._receive(), REQUEST_BODY_TIMEOUT_SECONDS)
        except TimeoutError:
            self.ended = "stalled"
            return {"type": "http.disconnect"}
        if message["type"] == "http.disconnect" and not self.ended:
            self.ended = "aborted"
        return message


async def _answer_unhandled(answer: Send, status: int | None, request: str, request_id: str) -> None:
    """The last resort: log the exception being handled once, and answer a generic 500 if still possible."""
    get_logger().exception("Unhandled error on %s", request, extra={"request_id": request_id})
    if status is not None:  # the answer had begun: nothing else can be sent
        raise  # noqa: PLE0704 - re-raises the exception the caller is handling
    body = json.dumps({"detail": "Internal Server Error", "request_id": request_id}).encode()
    content = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await answer({"type": "http.response.start", "status": 500, "headers": content})
    await answer({"type": "http.response.body", "body": body})


async def _answer_stalled(answer: Send) -> None:
    seconds = f"{REQUEST_BODY_TIMEOUT_SECONDS:g}"
    body = json.dumps(
        {"detail": f"The request body stopped arriving for {seconds} s; send it whole."}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await answer({"type": "http.response.start", "status": 408, "headers": headers})
    await answer({"type": "http.response.body", "body": body})


def _routed_path(scope: Scope) -> tuple[str, str]:
    """(root_path, path) of the request as the app routes it: the client's prefixes moved to root_path."""
    prefix, path = client_prefix(scope.get("aws.event"), scope["path"])
    base = get_settings().api_base_path
    # A custom domain's base path mapping arrives inside the path.
    if base and (path == base or path.startswith(base + "/")):
        prefix, path = prefix + base, path[len(base) :] or "/"
    root = scope.get("root_path", "") + prefix
    return root, path


def _request_id(scope: Scope) -> str:
    """API Gateway's request id, else Lambda's, else a fresh one (local runs)."""
    event = scope.get("aws.event")
    context = event.get("requestContext") if isinstance(event, dict) else None
    if isinstance(context, dict) and isinstance(context.get("requestId"), str) and context["requestId"]:
        return str(context["requestId"])
    lambda_request_id = getattr(scope.get("aws.context"), "aws_request_id", None)
    return str(lambda_request_id) if lambda_request_id else uuid.uuid4().hex


def _response_headers(path: str, request_id: str) -> list[tuple[bytes, bytes]]:
    policy = _DOCS_POLICY if path in _DOCS_PATHS else _API_POLICY
    headers = [
        (b"x-request-id", request_id.encode()),
        *_SECURITY_HEADERS,
        (b"content-security-policy", policy),
    ]
    if any(path == prefix or path.startswith(prefix + "/") for prefix in PRIVATE_PREFIXES):
        headers.append((b"cache-control", b"no-store"))
    return headers


class EdgeMiddleware:
    """The ASGI middleware around the app: prefixes, HEAD, headers, the log line, the last-resort 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        run_blocking_calls_inline("aws.event" in scope)  # Mangum: one request per container (app.blocking)
        method = scope["method"]
        root, path = _routed_path(scope)
        request_id = _request_id(scope)
        # request.state: request_id for routes and handlers; owner, set by its dependency, for the log line.
        state: dict[str, Any] = {"request_id": request_id}
        inner = {
            **scope,
            "method": "GET" if method == "HEAD" else method,  # answered without a body (RFC 9110 9.3.2)
            "root_path": root,
            "path": root + path,
            "state": state,
        }
        extra_headers = _response_headers(path, request_id)
        status: int | None = None

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *extra_headers]}
            elif message["type"] == "http.response.body" and method == "HEAD":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        body = _ClientBody(receive, local_server="aws.event" not in scope)
        try:
            await self.app(inner, body, answer)
        except Exception:
            if status is None and body.ended == "stalled":
                await _answer_stalled(answer)
            elif status is not None or body.ended != "aborted":  # aborted: nothing failed here
                await _answer_unhandled(answer, status, f"{method} {scope['path']}", request_id)
        finally:
            route = getattr(inner.get("route"), "path", None)
            owner = state.get("owner")
            owner_ref = owner_reference(owner) if owner else None
            aborted = status is None and body.ended == "aborted"
            logged = CLIENT_CLOSED_REQUEST if aborted else status or 500
            seconds = time.perf_counter() - start
            log_request(scope, method, route, logged, seconds, state, owner_ref, aborted=aborted)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The handshake's HTTP answer, accepted or refused, carries the request id and the
        # security headers too. (Only `make run` serves WebSockets: deployed, API Gateway does.)
        request_id = _request_id(scope)
        extra = [(b"x-request-id", request_id.encode()), *_SECURITY_HEADERS]
        answered = False
        denials = "websocket.http.response" in scope.get("extensions", {})

        async def answer(message: Message) -> None:
            nonlocal answered
            if message["type"] in {"websocket.accept", "websocket.http.response.start"}:
                answered = True
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            elif message["type"] == "websocket.close" and not answered and denials:
                # Closed before any answer: no WebSocket route at this path (the router's
                # close). An HTTP answer like every other unknown path's, not the server's bare 403.
                answered = True
                REFUSED_HANDSHAKE.set("404 no WebSocket route at this path")  # expected, not an error
                body = json.dumps({"detail": "Not Found"}).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send(
                    {"type": "websocket.http.response.start", "status": 404, "headers": [*headers, *extra]}
                )
                await send({"type": "websocket.http.response.body", "body": body})
                return
            await send(message)

        await self.app({**scope, "state": {"request_id": request_id}}, receive, answer)
