"""Failure injection into moto's DynamoDB, at the point where botocore sends a request.

moto answers botocore's ``before-send`` event in-process; wrapping that answer
lets a test decide, per attempt, what DynamoDB does:

- ``throttle``: the request is refused with ProvisionedThroughputExceededException
  and not applied (botocore retries it);
- ``lose_reply``: the request is applied, then the connection drops before the
  reply arrives (botocore retries it: the ambiguous write);
- ``fail``: an InternalServerError, not applied;
- ``timeout``: no reply in time, not applied.

It also makes every request atomic. Real DynamoDB applies a conditional write
atomically; moto checks the condition and writes in two steps, so concurrent
tests would otherwise measure moto's races rather than this API's.
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
from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse

Decide = Callable[[str], str | None]
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"})


def _operation(request: AWSPreparedRequest) -> str:
    target = request.headers.get("X-Amz-Target", b"")
    if isinstance(target, bytes):
        target = target.decode()
    service, _, operation = target.partition(".")
    return operation if service.startswith("DynamoDB_") else ""


def _error(request: AWSPreparedRequest, status: int, code: str) -> AWSResponse:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected"})
    headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": "injected"}
    return AWSResponse(request.url, status, headers, MockRawResponse(body))  # type: ignore[arg-type]


class FaultInjector:
    """Decides the fate of each DynamoDB attempt and counts what happened."""

    def __init__(self) -> None:
        self.decide: Decide = lambda _operation: None
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def at_rate(self, rate: float, fault: str, operations: frozenset[str] = WRITES, seed: int = 7) -> None:
        """Inject `fault` into that fraction of attempts of these operations (reproducibly)."""
        chooser = random.Random(seed)
        lock = threading.Lock()

        def decide(operation: str) -> str | None:
            with lock:
                roll = chooser.random()
            return fault if operation in operations and roll < rate else None

        self.decide = decide

    def handle(
        self, stubber: BotocoreStubber, event_name: str, request: AWSPreparedRequest, **kwargs: Any
    ) -> Any:
        operation = _operation(request)
        fault = self.decide(operation) if operation and stubber.enabled else None
        if fault:
            self.counts[fault] += 1
        if fault == "throttle":
            return _error(request, 400, "ProvisionedThroughputExceededException")
        if fault == "fail":
            return _error(request, 500, "InternalServerError")
        if fault == "timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        with self._lock:
            response = ORIGINAL_CALL(stubber, event_name, request, **kwargs)
        if fault == "lose_reply" and response is not None and response.status_code == 200:
            raise ReadTimeoutError(endpoint_url=request.url)
        return response


ORIGINAL_CALL = BotocoreStubber.__call__


@contextmanager
def injected_faults() -> Iterator[FaultInjector]:
    """Route moto's answers through a FaultInjector; botocore's backoff sleeps are skipped."""
    from botocore.retries import standard

    injector = FaultInjector()
    original_delay = standard.ExponentialBackoff.delay_amount

    def handle(self: BotocoreStubber, event_name: str, request: AWSPreparedRequest, **kwargs: Any) -> Any:
        return injector.handle(self, event_name, request, **kwargs)

    BotocoreStubber.__call__ = handle  # type: ignore[method-assign]
    standard.ExponentialBackoff.delay_amount = lambda self, context: 0  # type: ignore[method-assign]
    try:
        yield injector
    finally:
        BotocoreStubber.__call__ = ORIGINAL_CALL  # type: ignore[method-assign]
        standard.ExponentialBackoff.delay_amount = original_delay  # type: ignore[method-assign]
