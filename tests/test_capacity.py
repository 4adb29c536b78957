"""The DynamoDB capacity ledger: exactly which calls each operation makes (a botocore event hook counts them).

Deterministic, so it runs in `make test`; the README lists the same calls with their capacity units.
"""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.settings import MAX_AWS_CALLS_PER_REQUEST

Auth = Callable[[str], dict[str, str]]
BODY = {"name": "Widget", "price": 1, "tags": ["t"]}


@pytest.fixture
def item(client: TestClient, auth: Auth) -> dict[str, Any]:
    response = client.post("/items", json=BODY, headers=auth("alice"))
    return {**response.json(), "etag": response.headers["etag"]}


@pytest.fixture
def ledger(calls: list[str]) -> Callable[[Callable[[], Any]], list[str]]:
    def count(request: Callable[[], Any]) -> list[str]:
        calls.clear()
        request()
        made = list(calls)
        assert len(made) <= MAX_AWS_CALLS_PER_REQUEST
        return made

    return count


def test_reads(client: TestClient, auth: Auth, item: dict[str, Any], ledger: Any) -> None:
    headers = auth("alice")
    assert ledger(lambda: client.get(f"/items/{item['id']}", headers=headers)) == ["GetItem"]
    assert ledger(lambda: client.get("/items/999", headers=headers)) == ["GetItem"]
    assert ledger(lambda: client.get("/items", headers=headers)) == ["Query"]
    assert ledger(lambda: client.get("/items", params={"limit": 1}, headers=headers)) == ["Query"]


def test_writes(client: TestClient, auth: Auth, item: dict[str, Any], ledger: Any) -> None:
    headers = auth("alice")
    path = f"/items/{item['id']}"
    assert ledger(lambda: client.post("/items", json=BODY, headers=headers)) == ["UpdateItem", "PutItem"]
    assert ledger(lambda: client.put(path, json=BODY, headers=headers)) == ["UpdateItem"]
    assert ledger(lambda: client.patch(path, json={"quantity": 2}, headers=headers)) == ["UpdateItem"]
    # A failed precondition or a missing item costs no extra read: the failed
    # condition returns the current row (ReturnValuesOnConditionCheckFailure).
    stale = {**headers, "If-Match": item["etag"]}
    assert ledger(lambda: client.patch(path, json={"quantity": 3}, headers=stale)) == ["UpdateItem"]
    assert ledger(lambda: client.put("/items/999", json=BODY, headers=headers)) == ["UpdateItem"]
    assert ledger(lambda: client.delete(path, headers=stale)) == ["UpdateItem"]
    assert ledger(lambda: client.delete(path, headers=headers)) == ["UpdateItem"]
    assert ledger(lambda: client.patch("/items/999", json={}, headers=headers)) == ["GetItem"]


def test_idempotency_key_adds_at_most_two_calls(
    client: TestClient, auth: Auth, item: dict[str, Any], ledger: Any
) -> None:
    keyed = {**auth("alice"), "Idempotency-Key": "k1"}
    assert ledger(lambda: client.post("/items", json=BODY, headers=keyed)) == [
        "PutItem",  # claim the key
        "UpdateItem",
        "PutItem",
        "UpdateItem",  # record the response
    ]
    assert ledger(lambda: client.post("/items", json=BODY, headers=keyed)) == ["PutItem"]  # replay
    patch = {**auth("alice"), "Idempotency-Key": "k2"}
    assert ledger(lambda: client.patch(f"/items/{item['id']}", json={"quantity": 1}, headers=patch)) == [
        "PutItem",
        "UpdateItem",
        "UpdateItem",
    ]


def test_public_routes_touch_no_aws(client: TestClient, ledger: Any) -> None:
    for path in ("/health", "/docs", "/redoc", "/openapi.json", "/nowhere"):
        assert ledger(lambda path=path: client.get(path)) == []


def test_reads_project_only_the_returned_attributes(
    client: TestClient, auth: Auth, item: dict[str, Any]
) -> None:
    from app.dependencies import get_dynamodb_client

    seen: list[dict[str, Any]] = []
    get_dynamodb_client().meta.events.register(
        "provide-client-params.dynamodb", lambda params, **_: seen.append(dict(params))
    )
    client.get(f"/items/{item['id']}", headers=auth("alice"))
    client.get("/items", headers=auth("alice"))
    for params in seen:
        projected = {name.strip() for name in params["ProjectionExpression"].split(",")}
        assert "pk" not in projected
        assert "name_folded" not in projected
        assert "write_token" not in projected
