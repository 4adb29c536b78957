"""Every DynamoDB error botocore's model lists for our calls has a deliberate answer, proven by injecting it.

The errors come from botocore's service model for each operation in
items_core.dynamodb_errors.OPERATIONS (the `calls` fixture fails any other call),
so a new call or a botocore upgrade that lists a new error fails here until it is
answered. Each error is injected into every attempt of the call that decides a
route's answer (tests/faults.py), on DynamoDB Local.
"""

from collections.abc import Callable
from typing import Any

import botocore.session
import pytest
from fastapi.testclient import TestClient

from items_core.dynamodb_errors import ANSWERS, OPERATIONS, Answer
from realtime import aws, notifier, websocket
from tests.conftest import LambdaContext
from tests.faults import FaultInjector, injected_faults
from tests.realtime_fixtures import Issuer, connect, connection_rows, item_row, stream_record, ws_event

Auth = Callable[[str], dict[str, str]]
MODEL = botocore.session.get_session().get_service_model("dynamodb")
# What the client gets for each answer (CONDITION errors are read by the store: DynamoDB Local
# produces them for real in the conditional-write tests, with the row they return).
STATUS = {Answer.UNAVAILABLE: 503, Answer.CONFLICT: 409, Answer.STORAGE_FULL: 507}
BODY = {"name": "Lamp", "price": 20}


def unanswered(operations: frozenset[str], answers: dict[str, Answer]) -> set[tuple[str, str]]:
    """(operation, error) pairs of botocore's model that `answers` leaves without an answer."""
    return {
        (operation, shape.name)
        for operation in operations
        for shape in MODEL.operation_model(operation).error_shapes
        if shape.name not in answers
    }


def model_errors(operation: str) -> list[str]:
    return sorted(shape.name for shape in MODEL.operation_model(operation).error_shapes)


def test_every_error_the_model_lists_for_our_calls_is_answered() -> None:
    assert unanswered(OPERATIONS, ANSWERS) == set()
    # ...and the check bites: an error left out, or a call added, is reported.
    without = {code: kind for code, kind in ANSWERS.items() if code != "TransactionConflictException"}
    assert ("UpdateItem", "TransactionConflictException") in unanswered(OPERATIONS, without)
    assert ("CreateBackup", "BackupInUseException") in unanswered(OPERATIONS | {"CreateBackup"}, ANSWERS)


def test_no_call_is_a_batch_or_a_scan() -> None:
    # BatchWriteItem's 25 and BatchGetItem's 100 requests per call cannot be reached: none is made.
    assert not {operation for operation in OPERATIONS if operation.startswith(("Batch", "Scan"))}


# --- the API: each route's deciding call, failing on every attempt -------------------------------

ROUTES: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "GetItem": ("GET", "/items/1", None),
    "Query": ("GET", "/items", None),
    "PutItem": ("POST", "/items", BODY),
    "UpdateItem": ("PATCH", "/items/1", {"quantity": 3}),
    "TransactWriteItems": ("DELETE", "/items/1", None),
}
CASES = [
    (operation, code)
    for operation in sorted(ROUTES)
    for code in model_errors(operation)
    if ANSWERS[code] is not Answer.CONDITION
]


@pytest.mark.parametrize(("operation", "code"), CASES)
def test_each_error_of_each_call_gets_its_answer_and_changes_nothing(
    client: TestClient, auth: Auth, faults: FaultInjector, operation: str, code: str
) -> None:
    headers = auth("alice")
    before = client.post("/items", json=BODY, headers=headers).json()
    faults.decide = lambda called: f"error:{code}" if called == operation else None
    method, path, body = ROUTES[operation]
    response = client.request(method, path, json=body, headers=headers)
    expected = STATUS[ANSWERS[code]]
    assert response.status_code == expected, response.text
    if expected in {409, 503}:
        assert response.headers["retry-after"] == "1"
    if code in {"TransactionConflictException", "ReplicatedWriteConflictException"}:
        assert faults.counts[f"error:{code}"] == 3  # retried within the call's attempts first
    faults.decide = lambda called: None
    assert client.get("/items", headers=headers).json()["items"] == [before]  # nothing half-written


@pytest.mark.parametrize("reasons", [["TransactionConflict", "None"], ["None", "TransactionConflict"]])
def test_a_transaction_cancelled_by_a_conflict_is_retried_then_409(
    client: TestClient, auth: Auth, faults: FaultInjector, reasons: list[str]
) -> None:
    headers = auth("alice")
    client.post("/items", json=BODY, headers=headers)
    cancelled = {"CancellationReasons": [{"Code": code} for code in reasons]}
    faults.decide = lambda called: (
        "error:TransactionCanceledException" if called == "TransactWriteItems" else None
    )
    faults.extra = cancelled
    response = client.delete("/items/1", headers=headers)
    assert (response.status_code, response.headers["retry-after"]) == (409, "1")
    assert faults.counts["error:TransactionCanceledException"] == 3
    faults.decide = lambda called: None
    assert client.get("/items/1", headers=headers).status_code == 200


def test_a_conflict_that_clears_within_the_attempts_is_invisible(
    client: TestClient, auth: Auth, faults: FaultInjector
) -> None:
    headers = auth("alice")
    client.post("/items", json=BODY, headers=headers)
    outcomes = iter(["error:TransactionConflictException"])
    faults.decide = lambda called: next(outcomes, None) if called == "UpdateItem" else None
    response = client.patch("/items/1", json={"quantity": 3}, headers=headers)
    assert (response.status_code, response.json()["version"]) == (200, 2)


@pytest.mark.parametrize("code", ["TransactionConflictException", "ProvisionedThroughputExceededException"])
def test_retryable_answers_are_never_stored_under_an_idempotency_key(
    client: TestClient, auth: Auth, faults: FaultInjector, code: str
) -> None:
    headers = {**auth("alice"), "Idempotency-Key": "k1"}
    client.post("/items", json=BODY, headers=auth("alice"))
    faults.decide = lambda called: f"error:{code}" if called == "UpdateItem" else None
    first = client.patch("/items/1", json={"quantity": 3}, headers=headers)
    assert first.status_code in {409, 503}
    assert "retry-after" in first.headers
    faults.decide = lambda called: None
    retried = client.patch("/items/1", json={"quantity": 3}, headers=headers)
    assert retried.status_code == 200
    assert "idempotent-replayed" not in retried.headers  # it ran; the retryable answer was not replayed
    again = client.patch("/items/1", json={"quantity": 3}, headers=headers)
    assert (again.headers["idempotent-replayed"], again.json()) == ("true", retried.json())


def test_a_write_conflict_of_the_store_is_not_stored_either(
    client: TestClient, auth: Auth, faults: FaultInjector
) -> None:
    # The item's version changed between the read and the transaction: the store's own 409.
    headers = auth("alice")
    client.post("/items", json={**BODY, "tags": ["a"]}, headers=headers)
    keyed = {**headers, "Idempotency-Key": "k2"}
    outcomes = iter(["error:TransactionCanceledException"])
    faults.extra = {"CancellationReasons": [{"Code": "ConditionalCheckFailed", "Item": _row_at_version(2)}]}
    faults.decide = lambda called: next(outcomes, None) if called == "TransactWriteItems" else None
    first = client.patch("/items/1", json={"tags": ["b"]}, headers=keyed)
    assert (first.status_code, first.headers["retry-after"]) == (409, "1")
    retried = client.patch("/items/1", json={"tags": ["b"]}, headers=keyed)
    assert (retried.status_code, retried.json()["tags"]) == (200, ["b"])
    assert "idempotent-replayed" not in retried.headers


def _row_at_version(version: int) -> dict[str, Any]:
    return item_row("alice", 1, version)


# --- the realtime functions --------------------------------------------------------------------

ANSWERED = [code for code in model_errors("PutItem") if ANSWERS[code] is not Answer.CONDITION]


@pytest.mark.parametrize("code", ANSWERED)
def test_connect_answers_503_when_dynamodb_does_not_record_the_connection(
    realtime: Any, issuer: Issuer, code: str
) -> None:
    with injected_faults(aws.dynamodb()) as faults:
        faults.decide = lambda called: f"error:{code}" if called == "PutItem" else None
        response = websocket.handler(ws_event("$connect", "c1", token=issuer.token("alice")), LambdaContext())
    assert (response["statusCode"], response["body"]) == (
        503,
        "cannot record the connection right now; retry",
    )
    assert connection_rows(realtime) == []


@pytest.mark.parametrize(
    ("operation", "code"), [(op, c) for op in ("Query", "DeleteItem") for c in model_errors(op)]
)
def test_disconnect_is_answered_whatever_dynamodb_does(
    realtime: Any, issuer: Issuer, operation: str, code: str
) -> None:
    connect(issuer, "c1", "alice")
    with injected_faults(aws.dynamodb()) as faults:
        faults.decide = lambda called: f"error:{code}" if called == operation else None
        response = websocket.handler(ws_event("$disconnect", "c1"), LambdaContext())
    assert response == {"statusCode": 200}


@pytest.mark.parametrize("code", model_errors("Query"))
def test_the_notifier_fails_the_record_for_a_retry_when_the_connections_query_fails(
    realtime: Any, issuer: Issuer, code: str
) -> None:
    connect(issuer, "c1", "alice")
    event = {"Records": [stream_record("INSERT", item_row("alice", 1, 1), None, 1)]}
    with injected_faults(aws.dynamodb()) as faults:
        faults.decide = lambda called: f"error:{code}" if called == "Query" else None
        response = notifier.handler(event, LambdaContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "1"}]}
