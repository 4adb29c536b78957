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


@pytest.fixture
def writes(dynamodb: Any) -> list[tuple[str, int]]:
    """Each call with the number of rows it writes (a transaction: its actions)."""
    from app.dependencies import get_dynamodb_client

    made: list[tuple[str, int]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        made.append((model.name, len(params.get("TransactItems", [])) or int(model.name != "GetItem")))

    get_dynamodb_client().meta.events.register("provide-client-params.dynamodb", record)
    return made


def test_writes_of_an_untagged_item(client: TestClient, auth: Auth, ledger: Any) -> None:
    headers = auth("alice")
    untagged = {**BODY, "tags": []}
    created = client.post("/items", json=untagged, headers=headers)
    path = f"/items/{created.json()['id']}"
    assert ledger(lambda: client.post("/items", json=untagged, headers=headers)) == ["UpdateItem", "PutItem"]
    assert ledger(lambda: client.put(path, json=untagged, headers=headers)) == ["UpdateItem"]
    assert ledger(lambda: client.patch(path, json={"quantity": 2}, headers=headers)) == ["UpdateItem"]
    # A failed precondition or a missing item costs no extra read: the failed
    # condition returns the current row (ReturnValuesOnConditionCheckFailure).
    stale = {**headers, "If-Match": created.headers["etag"]}
    assert ledger(lambda: client.patch(path, json={"quantity": 3}, headers=stale)) == ["UpdateItem"]
    assert ledger(lambda: client.put("/items/999", json=untagged, headers=headers)) == ["UpdateItem"]
    assert ledger(lambda: client.delete(path, headers=stale)) == ["TransactWriteItems"]
    # A delete removes the item and leaves its tombstone outside the listing, atomically.
    assert ledger(lambda: client.delete(path, headers=headers)) == ["TransactWriteItems"]
    assert ledger(lambda: client.delete(path, headers=headers)) == ["TransactWriteItems"]  # 404
    assert ledger(lambda: client.patch("/items/999", json={}, headers=headers)) == ["GetItem"]


def test_writes_of_a_tagged_item_carry_its_tag_copies(
    client: TestClient, auth: Auth, item: dict[str, Any], ledger: Any, writes: list[tuple[str, int]]
) -> None:
    headers = auth("alice")
    path = f"/items/{item['id']}"
    two_tags = {**BODY, "tags": ["t", "u"]}
    writes.clear()
    assert ledger(lambda: client.post("/items", json=two_tags, headers=headers)) == [
        "UpdateItem",  # the id counter
        "TransactWriteItems",  # the item and its 2 tag copies
    ]
    assert writes == [("UpdateItem", 1), ("TransactWriteItems", 3)]
    writes.clear()
    # Tags in the body: the current row is read, then item and copies are written together.
    assert ledger(lambda: client.put(path, json=two_tags, headers=headers)) == [
        "GetItem",
        "TransactWriteItems",
    ]
    assert writes == [("GetItem", 0), ("TransactWriteItems", 3)]
    writes.clear()
    # No tags in the body: the untagged attempt fails and returns the row; then the transaction.
    assert ledger(lambda: client.patch(path, json={"quantity": 2}, headers=headers)) == [
        "UpdateItem",
        "TransactWriteItems",
    ]
    assert writes == [("UpdateItem", 1), ("TransactWriteItems", 3)]
    writes.clear()
    assert ledger(lambda: client.patch(path, json={"tags": ["u"]}, headers=headers)) == [
        "GetItem",
        "TransactWriteItems",
    ]
    assert writes[-1] == ("TransactWriteItems", 3)  # the item, the copy under u, the removal under t
    current = client.get(path, headers=headers)
    stale = {**headers, "If-Match": item["etag"]}
    assert ledger(lambda: client.patch(path, json={"quantity": 3}, headers=stale)) == ["UpdateItem"]
    assert ledger(lambda: client.put("/items/999", json=two_tags, headers=headers)) == ["GetItem"]
    writes.clear()
    fresh = {**headers, "If-Match": current.headers["etag"]}
    assert ledger(lambda: client.delete(path, headers=fresh)) == ["TransactWriteItems", "TransactWriteItems"]
    assert writes == [("TransactWriteItems", 2), ("TransactWriteItems", 3)]  # + the tag copy's removal


def test_idempotency_key_adds_at_most_two_calls(
    client: TestClient, auth: Auth, item: dict[str, Any], ledger: Any
) -> None:
    keyed = {**auth("alice"), "Idempotency-Key": "k1"}
    assert ledger(lambda: client.post("/items", json=BODY, headers=keyed)) == [
        "PutItem",  # claim the key (idempotency table)
        "UpdateItem",
        "TransactWriteItems",
        "UpdateItem",  # record the response
    ]
    assert ledger(lambda: client.post("/items", json=BODY, headers=keyed)) == ["PutItem"]  # replay
    patch = {**auth("alice"), "Idempotency-Key": "k2"}
    assert ledger(lambda: client.patch(f"/items/{item['id']}", json={"quantity": 1}, headers=patch)) == [
        "PutItem",
        "UpdateItem",
        "TransactWriteItems",
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
