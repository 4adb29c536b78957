"""What each operation may cost DynamoDB: a budget of calls and rows written, as docs/performance.md states.

Budgets, not call sequences: any implementation within them keeps the promise. A botocore event
hook counts the app's calls and the rows each writes (a transaction: its actions).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.dependencies import get_dynamodb_client, get_single_attempt_client
from app.settings import MAX_AWS_CALLS_PER_REQUEST, SINGLE_ATTEMPT_CALLS_PER_REQUEST

Auth = Callable[[str], dict[str, str]]
BODY = {"name": "Widget", "price": 1, "tags": ["t"]}
UNTAGGED = {**BODY, "tags": []}


@dataclass(frozen=True)
class Cost:
    """What one request cost: DynamoDB calls and the rows they wrote."""

    calls: int
    rows_written: int


@pytest.fixture
def cost(calls: list[str]) -> Callable[[Callable[[], Any]], Cost]:
    written: list[int] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        rows = len(params.get("TransactItems", [])) or int(model.name not in {"GetItem", "Query"})
        written.append(rows)

    get_dynamodb_client().meta.events.register("provide-client-params.dynamodb", record)
    # The single-attempt client: layout reads and a delete's count update (written rows count too).
    single: list[str] = []
    get_single_attempt_client().meta.events.register(
        "before-call.dynamodb", lambda model, **_: single.append(model.name)
    )
    get_single_attempt_client().meta.events.register("provide-client-params.dynamodb", record)

    def measure(request: Callable[[], Any]) -> Cost:
        calls.clear()
        written.clear()
        single.clear()
        request()
        assert len(calls) <= MAX_AWS_CALLS_PER_REQUEST
        assert len(single) <= SINGLE_ATTEMPT_CALLS_PER_REQUEST  # the template's RetryBudget's room
        return Cost(len(calls), sum(written))

    return measure


def within(spent: Cost, *, calls: int, rows_written: int = 0) -> bool:
    return spent.calls <= calls and spent.rows_written <= rows_written


@pytest.fixture
def item(client: TestClient, auth: Auth) -> dict[str, Any]:
    response = client.post("/items", json=BODY, headers=auth("alice"))
    return {**response.json(), "etag": response.headers["etag"]}


def test_reads_are_one_call_and_write_nothing(
    client: TestClient, auth: Auth, item: dict[str, Any], cost: Any
) -> None:
    headers = auth("alice")
    for path in (f"/items/{item['id']}", "/items/999", "/items", "/items?limit=1", "/items?tag=t"):
        assert within(cost(lambda path=path: client.get(path, headers=headers)), calls=1), path
    # q reads within its budget: 2 Queries and the id counter.
    assert within(cost(lambda: client.get("/items?q=zzz", headers=headers)), calls=3)


def test_writes_of_an_untagged_item(client: TestClient, auth: Auth, cost: Any) -> None:
    headers = auth("alice")
    created = client.post("/items", json=UNTAGGED, headers=headers)
    path = f"/items/{created.json()['id']}"
    stale = {**headers, "If-Match": created.headers["etag"]}
    assert within(
        cost(lambda: client.post("/items", json=UNTAGGED, headers=headers)), calls=2, rows_written=2
    )
    for request in (
        lambda: client.put(path, json=UNTAGGED, headers=headers),
        lambda: client.patch(path, json={"quantity": 2}, headers=headers),
        # A failed precondition or a missing item costs no extra read: the failed
        # condition returns the current row.
        lambda: client.patch(path, json={"quantity": 3}, headers=stale),
        lambda: client.put("/items/999", json=UNTAGGED, headers=headers),
    ):
        assert within(cost(request), calls=1, rows_written=1)
    # A delete takes the item out and leaves its tombstone, atomically, then takes it off the
    # owner's count; a 412 or a 404 is the one failed transaction.
    assert within(cost(lambda: client.delete(path, headers=stale)), calls=1, rows_written=2)
    assert within(cost(lambda: client.delete(path, headers=headers)), calls=1, rows_written=3)
    assert within(cost(lambda: client.delete(path, headers=headers)), calls=1, rows_written=2)
    assert within(cost(lambda: client.patch("/items/999", json={}, headers=headers)), calls=1)


def test_writes_of_a_tagged_item_carry_its_tag_copies(
    client: TestClient, auth: Auth, item: dict[str, Any], cost: Any
) -> None:
    headers = auth("alice")
    path = f"/items/{item['id']}"
    two_tags = {**BODY, "tags": ["t", "u"]}
    # The id counter, then the item and its 2 copies.
    assert within(
        cost(lambda: client.post("/items", json=two_tags, headers=headers)), calls=2, rows_written=4
    )
    # Tags in the body: one read, then item, new copies and removed copies.
    assert within(cost(lambda: client.put(path, json=two_tags, headers=headers)), calls=2, rows_written=3)
    # No tags in the body: the untagged attempt (which returns the row), then item and copies.
    assert within(
        cost(lambda: client.patch(path, json={"quantity": 2}, headers=headers)), calls=2, rows_written=4
    )
    assert within(
        cost(lambda: client.patch(path, json={"tags": ["u"]}, headers=headers)), calls=2, rows_written=3
    )
    stale = {**headers, "If-Match": item["etag"]}
    assert within(
        cost(lambda: client.patch(path, json={"quantity": 3}, headers=stale)), calls=1, rows_written=1
    )
    assert within(cost(lambda: client.put("/items/999", json=two_tags, headers=headers)), calls=1)
    fresh = {**headers, "If-Match": client.get(path, headers=headers).headers["etag"]}
    # Item out, tombstone in, the copy under u removed (the first attempt finds the tags), then
    # the owner's count.
    assert within(cost(lambda: client.delete(path, headers=fresh)), calls=2, rows_written=6)


def test_an_idempotency_key_adds_at_most_two_calls(
    client: TestClient, auth: Auth, item: dict[str, Any], cost: Any
) -> None:
    keyed = {**auth("alice"), "Idempotency-Key": "k1"}
    first = cost(lambda: client.post("/items", json=BODY, headers=keyed))
    assert within(first, calls=2 + 2, rows_written=3 + 2)  # the create (1 tag), the claim and the record
    assert within(
        cost(lambda: client.post("/items", json=BODY, headers=keyed)), calls=1, rows_written=1
    )  # replay
    patch = {**auth("alice"), "Idempotency-Key": "k2"}
    spent = cost(lambda: client.patch(f"/items/{item['id']}", json={"quantity": 1}, headers=patch))
    assert within(spent, calls=2 + 2, rows_written=3 + 2)


def test_for_a_day_after_an_upgrade_the_claim_checks_the_earlier_record_in_the_same_call(
    client: TestClient, auth: Auth, item: dict[str, Any], cost: Any, dynamodb: Any
) -> None:
    from app import dependencies
    from tests.conftest import TABLE_NAME
    from upgrade.backfill import reset

    reset(dynamodb, TABLE_NAME)  # what the deploy's custom resource does
    dependencies.get_layout_reader.cache_clear()
    patch = {**auth("alice"), "Idempotency-Key": "k3"}
    spent = cost(lambda: client.patch(f"/items/{item['id']}", json={"quantity": 1}, headers=patch))
    assert within(spent, calls=2 + 2, rows_written=3 + 2 + 1)  # the claim is a transaction of two


def test_public_routes_touch_no_aws(client: TestClient, cost: Any) -> None:
    for path in ("/health", "/docs", "/redoc", "/openapi.json", "/nowhere"):
        assert cost(lambda path=path: client.get(path)) == Cost(0, 0), path


def test_reads_project_only_the_returned_attributes(
    client: TestClient, auth: Auth, item: dict[str, Any]
) -> None:
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
