"""One log line per request, which is also its CloudWatch metrics record (see app.observability)."""

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.middleware.response_headers import request_id
from app.observability import (
    metrics_directive,
    metrics_namespace,
    owner_reference,
    take_cold_start,
    write_request_line,
)


class RequestLogMiddleware:
    """Logs each request once and records its metrics (pure ASGI; sits just inside RootPathMiddleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        scope.setdefault("state", {})
        method = scope["method"]  # as the client sent it (HeadMiddleware routes HEAD as GET)
        status = 500

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            self._record(scope, method, status, (time.perf_counter() - start) * 1000)

    @staticmethod
    def _record(scope: Scope, method: str, status: int, latency_ms: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        owner = scope["state"].get("owner")
        context = scope.get("aws.context")
        cold_start = take_cold_start()
        fields: dict[str, Any] = {
            "method": method,
            "route": route,
            "status": status,
            "latency_ms": round(latency_ms, 2),
            "request_id": request_id(scope),
            "lambda_request_id": getattr(context, "aws_request_id", None),
            "cold_start": cold_start,
            "owner_ref": owner_reference(owner) if owner else None,
        }
        namespace = metrics_namespace()
        directive = None
        if namespace:
            directive = metrics_directive(namespace, cold_start)
            fields["Requests"] = 1
            fields["Latency"] = fields["latency_ms"]
            fields["Errors4xx"] = int(400 <= status < 500)
            fields["Errors5xx"] = int(status >= 500)
            if cold_start:
                fields["ColdStart"] = 1
        write_request_line(fields, directive)
