"""One structured log line and one set of CloudWatch metrics (EMF) per request, with Powertools.

The log line names the route template, not the raw path, and an owner
reference that cannot be turned back into the owner (a hash); nothing logs a
request body or a token. Service name, metrics namespace and log level are
Powertools' own settings (POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE,
POWERTOOLS_LOG_LEVEL), which the template sets.
"""

import hashlib
import os
import time
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.response_headers import request_id

DEFAULT_SERVICE = "items-api"
DEFAULT_NAMESPACE = "ItemsApi"
_cold_start = True


@lru_cache
def get_logger() -> Logger:
    """The service's JSON logger (stdout, which Lambda sends to CloudWatch Logs)."""
    return Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE)


@lru_cache
def get_metrics() -> Metrics:
    """The service's EMF metrics; flushed once per request."""
    return Metrics(
        namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE,
        service=os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE,
    )


def owner_reference(owner: str) -> str:
    """A stable, non-reversible reference to an owner, for correlating log lines."""
    return hashlib.sha256(f"items-api owner:{owner}".encode()).hexdigest()[:16]


def _take_cold_start() -> bool:
    global _cold_start  # one flag per container, by definition
    cold, _cold_start = _cold_start, False
    return cold


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
        status = 500

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            self._record(scope, status, (time.perf_counter() - start) * 1000)

    @staticmethod
    def _record(scope: Scope, status: int, latency_ms: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        owner = scope["state"].get("owner")
        context = scope.get("aws.context")
        cold_start = _take_cold_start()
        fields: dict[str, Any] = {
            "method": scope["method"],
            "route": route,
            "status": status,
            "latency_ms": round(latency_ms, 2),
            "request_id": request_id(scope),
            "lambda_request_id": getattr(context, "aws_request_id", None),
            "cold_start": cold_start,
            "owner_ref": owner_reference(owner) if owner else None,
        }
        get_logger().info("request", extra=fields)
        metrics = get_metrics()
        metrics.add_dimension(name="route", value=f"{scope['method']} {route}")
        metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=latency_ms)
        metrics.add_metric(name="Errors4xx", unit=MetricUnit.Count, value=int(400 <= status < 500))
        metrics.add_metric(name="Errors5xx", unit=MetricUnit.Count, value=int(status >= 500))
        if cold_start:
            metrics.add_metric(name="ColdStart", unit=MetricUnit.Count, value=1)
        metrics.flush_metrics()
