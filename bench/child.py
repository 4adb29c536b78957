"""Runs inside one measured process (python3.13, laid out as Lambda lays out the build)."""

# `cold`: import the handler and serve the first GET /items/1 against DynamoDB Local.
# `warm`: DynamoDB answered in-process by canned replies; per-request latency of GET, POST and a
# list page through the handler, then the peak RSS after 1,000 requests.

import importlib
import json
import os
import resource
import sys
import time
from typing import Any

EVENT = json.loads(os.environ["BENCH_EVENT"])


class Context:
    function_name = "bench"
    aws_request_id = "bench"
    memory_limit_in_mb = 512

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 25_000


def event(method: str, path: str, query: str = "", body: str | None = None) -> dict[str, Any]:
    built: dict[str, Any] = json.loads(json.dumps(EVENT))
    built["rawPath"] = path
    built["rawQueryString"] = query
    built["requestContext"]["http"]["method"] = method
    built["requestContext"]["http"]["path"] = path
    built["body"] = body
    built["isBase64Encoded"] = False
    return built


def load_handler() -> Any:
    module, attribute = os.environ["BENCH_HANDLER"].rsplit(".", 1)
    return getattr(importlib.import_module(module), attribute)


def cold() -> None:
    start = time.perf_counter()
    handler = load_handler()
    imported = time.perf_counter()
    response = handler(event("GET", "/items/1"), Context())
    done = time.perf_counter()
    if response["statusCode"] != 200:
        raise SystemExit(f"first GET answered {response['statusCode']}: {response.get('body')}")
    print(json.dumps({"ms": (done - start) * 1000, "import_ms": (imported - start) * 1000}))


def imports() -> None:
    """Only import the modules named in BENCH_IMPORTS (the floor of what any such app imports)."""
    start = time.perf_counter()
    for name in os.environ["BENCH_IMPORTS"].split(","):
        importlib.import_module(name)
    print(json.dumps({"ms": (time.perf_counter() - start) * 1000}))


def canned_dynamodb() -> None:
    """Answer every DynamoDB call in-process, below botocore's serialisation and parsing."""
    from botocore.awsrequest import AWSResponse
    from botocore.httpsession import URLLib3Session

    item = {
        "pk": {"S": "OWNER#bench"},
        "sk": {"N": "1"},
        "name": {"S": "Widget"},
        "price": {"N": "9.99"},
        "quantity": {"N": "0"},
        "tags": {"L": [{"S": "tools"}]},
        "version": {"N": "1"},
        "created_at": {"S": "2026-11-26T05:00:00Z"},
        "updated_at": {"S": "2026-11-26T05:00:00Z"},
    }
    replies = {
        "GetItem": {"Item": item},
        "PutItem": {},
        "TransactWriteItems": {},  # a create with tags writes its copies in the same transaction
        "UpdateItem": {"Attributes": {"last_id": {"N": "2"}}},
        "Query": {"Items": [{**item, "sk": {"N": str(i)}} for i in range(1, 21)], "Count": 20},
    }
    encoded = {name: json.dumps(body).encode() for name, body in replies.items()}

    class Raw:
        def __init__(self, body: bytes) -> None:
            self.body = body

        def stream(self, **_: Any) -> Any:
            yield self.body

    def send(self: Any, request: Any) -> AWSResponse:
        target = request.headers["X-Amz-Target"]
        operation = (target.decode() if isinstance(target, bytes) else target).rsplit(".", 1)[1]
        headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": "bench"}
        return AWSResponse(request.url, 200, headers, Raw(encoded[operation]))  # type: ignore[arg-type]

    URLLib3Session.send = send  # type: ignore[method-assign]


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would include the parent's from before exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def warm() -> None:
    canned_dynamodb()
    handler = load_handler()
    context = Context()
    body = json.dumps({"name": "Widget", "price": 9.99, "tags": ["tools"]})
    cases = {
        "GET /items/{id}": event("GET", "/items/1"),
        "POST /items": event("POST", "/items", body=body),
        "GET /items?limit=20": event("GET", "/items", query="limit=20"),
    }
    batches, per_batch = (
        int(os.environ.get("BENCH_BATCHES", "10")),
        int(os.environ.get("BENCH_PER_BATCH", "100")),
    )
    results: dict[str, list[float]] = {}
    for name, request in cases.items():
        for _ in range(20):  # warm up: first-use caches, the client, the schema of the route
            status = handler(request, context)["statusCode"]
            if status >= 300:
                raise SystemExit(f"{name} answered {status}")
        timings = []
        for _ in range(batches):
            start = time.perf_counter()
            for _ in range(per_batch):
                handler(request, context)
            timings.append((time.perf_counter() - start) / per_batch * 1e6)
        results[name] = timings
    served = 60 + 3 * batches * per_batch
    for _ in range(max(0, 1000 - served)):
        handler(cases["GET /items/{id}"], context)
    results["peak_rss_mb"] = [peak_rss_mb()]
    print(json.dumps(results))


if __name__ == "__main__":
    {"cold": cold, "warm": warm, "imports": imports}[sys.argv[1]]()
