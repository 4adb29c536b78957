"""Headers on every response, errors included: request id and security headers."""

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.middleware.root_path import route_path, under_prefix

_API_POLICY = b"default-src 'none'; frame-ancestors 'none'"
# Swagger UI and ReDoc load their scripts and styles from this API (app/routes/docs.py)
# and run an inline bootstrap script; ReDoc starts a worker from a blob URL. No other host.
_DOCS_POLICY = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
    b"frame-ancestors 'none'"
)
_DOCS_PATHS = ("/docs", "/redoc")
_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def request_id(scope: Scope) -> str:
    """The id of this request: API Gateway's, else Lambda's, else a fresh one (local runs)."""
    state = scope.setdefault("state", {})
    if "request_id" in state:
        return str(state["request_id"])
    event = scope.get("aws.event")
    context = event.get("requestContext") if isinstance(event, dict) else None
    lambda_context = scope.get("aws.context")
    if isinstance(context, dict) and isinstance(context.get("requestId"), str) and context["requestId"]:
        value = str(context["requestId"])
    elif lambda_context is not None and getattr(lambda_context, "aws_request_id", None):
        value = str(lambda_context.aws_request_id)
    else:
        value = uuid.uuid4().hex
    state["request_id"] = value
    return value


class ResponseHeadersMiddleware:
    """Adds X-Request-ID, nosniff, HSTS, framing and content-security headers to every response.

    Responses under `private_prefixes` (per-owner data) also get ``Cache-Control: no-store``.
    """

    def __init__(self, app: ASGIApp, *, private_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self._private = private_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [(b"x-request-id", request_id(scope).encode()), *_COMMON]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                path = route_path(scope)
                policy = _DOCS_POLICY if path in _DOCS_PATHS else _API_POLICY
                headers = [*message.get("headers", []), *extra, (b"content-security-policy", policy)]
                if under_prefix(path, self._private):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The handshake's HTTP answer, accepted or refused, carries the request id too.
        extra = [(b"x-request-id", request_id(scope).encode())]

        async def send_with_headers(message: Message) -> None:
            if message["type"] in {"websocket.accept", "websocket.http.response.start"}:
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
