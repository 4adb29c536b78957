"""One log line per request that is also its CloudWatch metrics record, and the diagnostics logger."""

import json
import logging
import os
import sys
import time
from contextvars import ContextVar
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from starlette.types import Scope

DEFAULT_SERVICE = "items-api"
DEFAULT_NAMESPACE = "ItemsApi"
_METRICS = ["Requests", "Latency", "Errors4xx", "Errors5xx"]
_UNITS = {"Latency": "Milliseconds"}
_cold_start = True


class LogStream:
    """Where every line of the service goes, in order: stdout, or the target a test sets."""

    def __init__(self) -> None:
        self.target: Any = None

    def write(self, text: str) -> int:
        return int((self.target or sys.stdout).write(text))

    def flush(self) -> None:
        (self.target or sys.stdout).flush()


LOG_STREAM = LogStream()
# Why the app refused the WebSocket handshake it is serving (local servers only; deployed, API
# Gateway serves WebSockets): read by make run's console (devtools.logs), which logs the server's
# "handshake not completed" as the expected refusal it is.
REFUSED_HANDSHAKE: ContextVar[str | None] = ContextVar("refused_handshake", default=None)


@lru_cache
def get_logger() -> "Logger":
    """The service's Powertools logger for diagnostics (warnings, errors), on the one LOG_STREAM."""
    from aws_lambda_powertools import Logger

    logger = Logger(
        service=service_name(), use_rfc3339=True, logger_handler=logging.StreamHandler(LOG_STREAM)
    )
    logger.remove_keys(["location"])
    return logger


@lru_cache
def service_name() -> str:
    """The `service` key of every line and the metrics' service dimension."""
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE


@lru_cache
def metrics_namespace() -> str | None:
    """The EMF namespace, or None when metrics are switched off (local runs)."""
    if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() == "true":
        return None
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE


def _xray_trace_id() -> str | None:
    # Lambda sets this for each invocation; the Root part is what Powertools logs.
    header = os.environ.get("_X_AMZN_TRACE_ID", "")
    return next((part[5:] for part in header.split(";") if part.startswith("Root=")), None)


def take_cold_start() -> bool:
    """True for the first request of this container, False ever after."""
    global _cold_start  # one flag per container, by definition
    cold, _cold_start = _cold_start, False
    return cold


def log_request(
    scope: "Scope",
    method: str,
    route: str | None,
    status: int,
    seconds: float,
    state: dict[str, Any],
    owner_ref: str | None,
    *,
    aborted: bool = False,
) -> None:
    """Write the request's line (INFO "request", at every log level: it is the metrics record)."""
    # Powertools Logger's keys in one json.dumps: importing its Logger and Metrics would slow every cold
    # start. The route template and an owner reference only: never the raw path, the owner, a body or a token.
    now = time.time()
    cold_start = take_cold_start()
    line: dict[str, Any] = {
        "level": "INFO",
        "message": "request",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z",
        "service": service_name(),
        "xray_trace_id": _xray_trace_id(),
        "method": method,
        "route": route or "unmatched",
        "status": status,
        "latency_ms": round(seconds * 1000, 2),
        "request_id": state.get("request_id"),
        "lambda_request_id": getattr(scope.get("aws.context"), "aws_request_id", None),
        "cold_start": cold_start,
        "owner_ref": owner_ref,
    }
    if line["xray_trace_id"] is None:
        del line["xray_trace_id"]
    if aborted:  # the client went away before its answer (status 499: it got none)
        line["aborted"] = True
    namespace = metrics_namespace()
    if namespace:
        metrics = {"Requests": 1, "Latency": line["latency_ms"]}
        metrics |= {"Errors4xx": int(400 <= status < 500), "Errors5xx": int(status >= 500)}
        if cold_start:
            metrics["ColdStart"] = 1
        directive = {
            "Namespace": namespace,
            "Dimensions": [["service", "method", "route"]],
            "Metrics": [{"Name": name, "Unit": _UNITS.get(name, "Count")} for name in metrics],
        }
        line |= metrics | {"_aws": {"Timestamp": int(now * 1000), "CloudWatchMetrics": [directive]}}
    LOG_STREAM.write(json.dumps(line, separators=(",", ":"), default=str) + "\n")
    LOG_STREAM.flush()
