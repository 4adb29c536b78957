"""Failure injection into a client's DynamoDB calls, per attempt, at the point where botocore sends them.

A ``before-send`` handler on the client decides what DynamoDB does with each attempt:

- ``throttle``: refused with ProvisionedThroughputExceededException, not applied (botocore retries it);
- ``lose_reply``: applied, then the connection drops before the reply arrives (botocore retries
  it: the ambiguous write);
- ``fail``: an InternalServerError, not applied;
- ``timeout``: no reply in time, not applied;
- any other DynamoDB error code (``error:TransactionConflictException``): that error, not applied,
  with the fields of ``extra`` in its body (``CancellationReasons``, ``Item``).
"""

import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.httpsession import URLLib3Session

Decide = Callable[[str], str | None]
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"})
# HTTP status DynamoDB answers each error with (5xx for its own failures).
_SERVER_ERRORS = frozenset({"InternalServerError", "ServiceUnavailable"})


def _operation(request: AWSPreparedRequest) -> str:
    target = request.headers.get("X-Amz-Target", b"")
    if isinstance(target, bytes):
        target = target.decode()
    _service, _, operation = target.partition(".")
    return operation


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def error_response(
    request: AWSPreparedRequest, code: str, extra: dict[str, Any] | None = None
) -> AWSResponse:
    """DynamoDB's answer with this error code (JSON 1.0 protocol), as if it came over the wire."""
    body = json.dumps(
        {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected", **(extra or {})}
    )
    status = 500 if code in _SERVER_ERRORS else 400
    headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": "injected"}
    return AWSResponse(request.url, status, headers, _Body(body.encode()))  # type: ignore[arg-type]


class FaultInjector:
    """Decides the fate of each DynamoDB attempt and counts what happened."""

    def __init__(self) -> None:
        self.decide: Decide = lambda _operation: None
        self.extra: dict[str, Any] = {}
        self.counts: Counter[str] = Counter()
        self._http = URLLib3Session()

    def at_rate(self, rate: float, fault: str, operations: frozenset[str] = WRITES, seed: int = 7) -> None:
        """Inject `fault` into that fraction of attempts of these operations (reproducibly)."""
        chooser = random.Random(seed)
        lock = threading.Lock()

        def decide(operation: str) -> str | None:
            with lock:
                roll = chooser.random()
            return fault if operation in operations and roll < rate else None

        self.decide = decide

    def before_send(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        """botocore's before-send handler: an injected answer, or None to send the request as usual."""
        operation = _operation(request)
        fault = self.decide(operation) if operation else None
        if fault is None:
            return None
        self.counts[fault] += 1
        if fault == "throttle":
            return error_response(request, "ProvisionedThroughputExceededException")
        if fault == "fail":
            return error_response(request, "InternalServerError")
        if fault == "timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        if fault.startswith("error:"):
            return error_response(request, fault.removeprefix("error:"), self.extra)
        if fault == "lose_reply":
            response = self._http.send(request)
            if response.status_code == 200:
                raise ReadTimeoutError(endpoint_url=request.url)
            return response
        raise ValueError(f"unknown fault {fault!r}")


@contextmanager
def injected_faults(*clients: Any) -> Iterator[FaultInjector]:
    """Inject faults into these clients' DynamoDB calls; botocore's backoff sleeps are skipped."""
    from botocore.retries import standard

    injector = FaultInjector()
    original_delay = standard.ExponentialBackoff.delay_amount
    for client in clients:
        client.meta.events.register_first("before-send.dynamodb", injector.before_send)
    standard.ExponentialBackoff.delay_amount = lambda self, context: 0  # type: ignore[method-assign]
    try:
        yield injector
    finally:
        standard.ExponentialBackoff.delay_amount = original_delay  # type: ignore[method-assign]
        for client in clients:
            client.meta.events.unregister("before-send.dynamodb", injector.before_send)
