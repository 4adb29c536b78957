"""Headers on every response, errors included: request id and security headers."""

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.middleware.root_path import route_path, under_prefix

_API_POLICY = b"default-src 'none'; frame-ancestors 'none'"
# Swagger UI and ReDoc load their scripts and styles from jsDelivr and run an
# inline bootstrap script; ReDoc starts a worker from a blob URL.
_DOCS_POLICY = (
    b"default-src 'none'; "
    b"script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    b"font-src https://fonts.gstatic.com; "
    b"img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    b"connect-src 'self'; worker-src blob:; frame-ancestors 'none'"
)
_DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
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
