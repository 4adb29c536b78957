"""Serves HTTP requests with a previous release's Lambda handler: the child of tests/previous_release.py.

Run as ``python -I previous_release_driver.py ROOT...``: each ROOT (that release's
``functions/api`` and ``layers/shared``) goes first on sys.path, so ``app`` and
``items_core`` are that release's; this file imports nothing of the current code.

The protocol is JSON lines. The first line out is ``{"ready": true, "modules": {...}}``
(where ``app`` and ``items_core`` were imported from). Then, per line in,
``{"method", "path", "query", "owner", "headers": [[name, value], ...], "body": base64 | null}``,
one line out: ``{"status", "headers": [[name, value], ...], "body": base64}``, or
``{"error": traceback}`` if the handler raised. End of input ends the program.

Each request reaches the handler as API Gateway's HTTP API (payload 2.0) delivers it,
with the owner as the ``sub`` claim its JWT authorizer verified (None: no authorizer
context, as for a route without one). The handler's own output (its request log lines)
goes to stderr; stdout carries only the protocol.
"""

import base64
import json
import os
import sys
import time
import traceback
import uuid
from typing import Any

DOMAIN = "id.execute-api.us-east-1.amazonaws.com"


class LambdaContext:
    """The attributes of Lambda's context object that Mangum and the app read."""

    function_name = "ApiFunction"
    memory_limit_in_mb = 512

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


def http_api_event(request: dict[str, Any]) -> dict[str, Any]:
    """The HTTP API payload 2.0 event of one request (lower-case header names, repeats comma-joined)."""
    body = request["body"]
    given: dict[str, str] = {}
    for name, value in request["headers"]:
        key = name.lower()
        given[key] = f"{given[key]},{value}" if key in given else value
    # What API Gateway adds to every request; the request's own values take precedence.
    headers = {
        "host": DOMAIN,
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
        "x-forwarded-for": "192.0.2.1",
        **({} if body is None else {"content-length": str(len(base64.b64decode(body)))}),
        **given,
    }
    now = time.time()
    context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "api-id",
        "domainName": DOMAIN,
        "domainPrefix": "id",
        "http": {
            "method": request["method"],
            "path": request["path"],
            "protocol": "HTTP/1.1",
            "sourceIp": "192.0.2.1",
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": uuid.uuid4().hex,
        "routeKey": "$default",
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if request["owner"] is not None:
        context["authorizer"] = {"jwt": {"claims": {"sub": request["owner"]}, "scopes": None}}
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request["path"],
        "rawQueryString": request["query"],
        "headers": headers,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": body is not None,
    }


def answer(handler: Any, request: dict[str, Any]) -> dict[str, Any]:
    """The handler's response to one request, in the protocol's form."""
    response = handler(http_api_event(request), LambdaContext())
    body = response.get("body") or ""
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode("utf-8")
    headers = [[name, value] for name, value in (response.get("headers") or {}).items()]
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers.extend([name, value] for value in values)
    headers.extend(["set-cookie", cookie] for cookie in response.get("cookies") or [])
    return {"status": response["statusCode"], "headers": headers, "body": base64.b64encode(raw).decode()}


def main(roots: list[str]) -> int:
    # The protocol keeps the real stdout; everything else written to stdout goes to stderr.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.path[0:0] = roots
    # The dependencies layer ships without pydantic.v1 (pruned before this driver's first release).
    sys.modules["pydantic.v1"] = None  # type: ignore[assignment]

    import app
    import items_core
    from app.main import handler

    ready = {"ready": True, "modules": {"app": app.__file__, "items_core": items_core.__file__}}
    protocol.write(json.dumps(ready) + "\n")
    protocol.flush()
    for line in sys.stdin.buffer:
        try:
            reply = answer(handler, json.loads(line))
        except Exception:  # reported to the parent, which raises it there
            reply = {"error": traceback.format_exc()}
        protocol.write(json.dumps(reply) + "\n")
        protocol.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
