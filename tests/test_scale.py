"""Listings and writes that hold at scale (issue 12): full pages across deletions, `tag` read
from its own partition, `q` within a budget, and the large-owner capacity ledger.

The meter here computes capacity as DynamoDB charges it, independently of what the engine
reports: a strongly consistent Query costs 1 RCU per 4 KB of the rows it *evaluated*
(filtered out or not), summed and rounded up; row sizes follow DynamoDB's item-size rules.
"""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.dependencies import get_dynamodb_client
from app.store.items import FILTERED_EVALUATION_LIMIT, MAX_QUERIES_PER_PAGE, ItemStore
from items_core.layout import LayoutReader
from items_core.models import ItemCreate
from tests.conftest import TABLE_NAME
from tests.test_listing import walk

pytestmark = pytest.mark.slow  # thousands of rows

Auth = Callable[[str], dict[str, str]]


# --- the meter ----------------------------------------------------------------


def _value_size(value: dict[str, Any]) -> int:
    [(kind, data)] = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = len(str(data).lstrip("-").replace(".", "").strip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(_value_size(element) + 1 for element in data)
    if kind == "M":
        return 3 + sum(len(name.encode()) + _value_size(element) + 1 for name, element in data.items())
    raise ValueError(kind)


def item_size(row: dict[str, Any]) -> int:
    """Bytes of a row by DynamoDB's rules: attribute names plus values."""
    return sum(len(name.encode()) + _value_size(value) for name, value in row.items())


@dataclass
class Call:
    operation: str
    evaluated: int = 0  # rows read (a Query's ScannedCount; 1 for a GetItem that found its row)
    bytes_read: int = 0

    @property
    def read_units(self) -> int:
        return max(1, math.ceil(self.bytes_read / 4096))


@dataclass
class Meter:
    calls: list[Call] = field(default_factory=list)

    def measure(self, request: Callable[[], Any]) -> list[Call]:
        self.calls.clear()
        request()
        return list(self.calls)


@pytest.fixture
def meter(dynamodb: Any) -> Meter:
    """Records each call of the app's client with the rows it evaluated and their bytes."""
    meter = Meter()
    client = get_dynamodb_client()
    pending: dict[int, dict[str, Any]] = {}

    def before(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        pending[id(context)] = dict(params)

    def after(
        http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        params = pending.pop(id(context), {})
        call = Call(model.name)
        if model.name == "Query":
            call.evaluated = parsed["ScannedCount"]
            call.bytes_read = sum(item_size(row) for row in _evaluated_rows(dynamodb, params, call.evaluated))
        elif model.name == "GetItem" and "Item" in parsed:
            whole = dynamodb.get_item(TableName=params["TableName"], Key=params["Key"])["Item"]
            call.evaluated, call.bytes_read = 1, item_size(whole)  # projection does not reduce the cost
        meter.calls.append(call)

    client.meta.events.register("provide-client-params.dynamodb", before)
    client.meta.events.register("after-call.dynamodb", after)
    return meter


def _evaluated_rows(dynamodb: Any, params: dict[str, Any], scanned: int) -> list[dict[str, Any]]:
    """The whole rows a Query evaluated: the same key range, unfiltered, unprojected."""
    if scanned == 0:
        return []
    values = params["ExpressionAttributeValues"]
    used = {name: value for name, value in values.items() if name in params["KeyConditionExpression"]}
    rows: list[dict[str, Any]] = dynamodb.query(
        TableName=params["TableName"],
        KeyConditionExpression=params["KeyConditionExpression"],
        ExpressionAttributeValues=used,
        Limit=scanned,
        ConsistentRead=True,
    )["Items"]
    return rows


# --- a large owner, written as the store writes it -----------------------------


class BulkClient:
    """Hands the store's writes to BatchWriteItem (no conditions), so 10,000 items load in seconds.

    The rows are exactly those the store's own create/delete calls write, 25 to a call instead
    of one call (or one transaction) each.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}  # what the table will hold, by key
        self.last_id = 0
        self.live_items = 0

    def update_item(
        self, **params: Any
    ) -> dict[str, Any]:  # the counter row: a create's id, a delete's count
        if ":minus_one" in params["ExpressionAttributeValues"]:
            self.live_items -= 1
            return {}
        self.last_id += 1
        self.live_items += 1
        return {"Attributes": {"last_id": {"N": str(self.last_id)}}}

    def put_item(self, **params: Any) -> dict[str, Any]:
        item = params["Item"]
        self._rows[(item["pk"]["S"], item["sk"]["N"])] = item
        return {}

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        for entry in TransactItems:
            if "Put" in entry:
                self.put_item(**entry["Put"])
            else:
                key = entry["Delete"]["Key"]
                self._rows.pop((key["pk"]["S"], key["sk"]["N"]))
        return {}

    def flush(self, owner: str) -> None:
        counter = {
            "last_id": {"N": str(self.last_id)},
            "live_items": {"N": str(self.live_items)},
            "write_token": {"S": "bulk"},
        }
        self.put_item(Item={"pk": {"S": f"OWNER#{owner}"}, "sk": {"N": "0"}, **counter})
        requests = [{"PutRequest": {"Item": row}} for row in self._rows.values()]
        for start in range(0, len(requests), 25):
            self._client.batch_write_item(RequestItems={TABLE_NAME: requests[start : start + 25]})
        self._rows.clear()


LARGE_OWNER_ITEMS = 10_000
DELETED_SHARE = 0.3
TAGGED = 10


@pytest.fixture
def large_owner(dynamodb: Any) -> dict[str, Any]:
    """10,000 items of "big" (names "item <n>", ~150-byte rows), 30 % deleted, 10 tagged "rare"."""
    bulk = BulkClient(dynamodb)
    store = ItemStore(bulk, TABLE_NAME, LayoutReader(lambda: bulk, TABLE_NAME))  # type: ignore[arg-type]
    chooser = random.Random(12)
    tagged = set(chooser.sample(range(1, LARGE_OWNER_ITEMS + 1), TAGGED))
    for number in range(1, LARGE_OWNER_ITEMS + 1):
        tags = ["rare"] if number in tagged else []
        store.create("big", ItemCreate(name=f"item {number}", price=Decimal("9.99"), tags=tags))
    deletable = [number for number in range(1, LARGE_OWNER_ITEMS + 1) if number not in tagged]
    deleted = set(chooser.sample(deletable, int(LARGE_OWNER_ITEMS * DELETED_SHARE)))
    for number in sorted(deleted):
        store.delete("big", number)  # the untagged path: the item out, its tombstone in
    bulk.flush("big")
    live = [number for number in range(1, LARGE_OWNER_ITEMS + 1) if number not in deleted]
    return {"live": live, "tagged": sorted(tagged), "deleted": deleted}


def test_the_bulk_loader_writes_the_rows_the_api_writes(
    client: TestClient, auth: Auth, dynamodb: Any
) -> None:
    """The ledger's owner is loaded with BulkClient: its rows must be the API's rows, key for key."""
    created = client.post(
        "/items", json={"name": "item 1", "price": 9.99, "tags": ["rare"]}, headers=auth("api")
    )
    client.post("/items", json={"name": "item 2", "price": 9.99}, headers=auth("api"))
    assert client.delete("/items/2", headers=auth("api")).status_code == 204
    bulk = BulkClient(dynamodb)
    store = ItemStore(bulk, TABLE_NAME, LayoutReader(lambda: bulk, TABLE_NAME))  # type: ignore[arg-type]
    store.create("bulk", ItemCreate(name="item 1", price=Decimal("9.99"), tags=["rare"]))
    store.create("bulk", ItemCreate(name="item 2", price=Decimal("9.99")))
    store.delete("bulk", 2)
    bulk.flush("bulk")
    assert created.status_code == 201

    def shape(owner: str) -> list[tuple[str, int, list[str]]]:
        rows = dynamodb.scan(TableName=TABLE_NAME)["Items"]  # test-side inspection only
        mine = [row for row in rows if owner in row["pk"]["S"]]
        return sorted(
            (
                row["pk"]["S"].replace(owner, "<owner>").replace(f"{len(owner)}#", "<n>#"),
                int(row["sk"]["N"]),
                sorted(row),
            )
            for row in mine
        )

    assert shape("api") == shape("bulk")


# --- pages across deletions ------------------------------------------------------


def test_an_unfiltered_page_after_deletions_is_full(client: TestClient, auth: Auth, meter: Meter) -> None:
    """The issue's example: 25 items, ids 1-21 deleted, limit 20: the 4 survivors, no cursor."""
    for number in range(25):
        client.post("/items", json={"name": f"n{number}", "price": 1}, headers=auth("alice"))
    for item_id in range(1, 22):
        assert client.delete(f"/items/{item_id}", headers=auth("alice")).status_code == 204
    calls = meter.measure(lambda: client.get("/items", params={"limit": 20}, headers=auth("alice")))
    page = client.get("/items", params={"limit": 20}, headers=auth("alice")).json()
    assert [item["id"] for item in page["items"]] == [22, 23, 24, 25]
    assert page["next_cursor"] is None
    assert len(calls) <= 1, calls  # no tombstone read
    assert sum(call.evaluated for call in calls) <= 4, calls


@pytest.mark.parametrize("limit", [1, 7, 20])
def test_every_unfiltered_page_but_the_last_is_full_whatever_was_deleted(
    client: TestClient, auth: Auth, limit: int
) -> None:
    chooser = random.Random(limit)
    ids = [
        client.post("/items", json={"name": f"n{n}", "price": 1}, headers=auth("alice")).json()["id"]
        for n in range(60)
    ]
    deleted = set(chooser.sample(ids, 40))
    for item_id in deleted:
        client.delete(f"/items/{item_id}", headers=auth("alice"))
    pages: list[list[int]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        body = client.get("/items", params=params, headers=auth("alice")).json()
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [n for page in pages for n in page] == [n for n in ids if n not in deleted]
    assert all(len(page) == limit for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= limit


# --- tags, from their own partition -----------------------------------------------


def test_a_tag_page_reads_only_the_items_carrying_the_tag(
    client: TestClient, auth: Auth, meter: Meter
) -> None:
    for number in range(300):
        tags = ["rare"] if number % 100 == 0 else []
        client.post("/items", json={"name": f"n{number}", "price": 1, "tags": tags}, headers=auth("alice"))
    calls = meter.measure(lambda: client.get("/items", params={"tag": "rare"}, headers=auth("alice")))
    assert len(calls) <= 1, calls
    assert sum(call.evaluated for call in calls) <= 3, calls
    page = client.get("/items", params={"tag": "rare"}, headers=auth("alice")).json()
    assert [item["id"] for item in page["items"]] == [1, 101, 201]
    assert page["next_cursor"] is None
    # q + tag narrows by tag first: only the 3 tagged rows are evaluated.
    calls = meter.measure(
        lambda: client.get("/items", params={"tag": "rare", "q": "N10"}, headers=auth("alice"))
    )
    assert len(calls) <= 1, calls
    assert sum(call.evaluated for call in calls) <= 3, calls
    assert [
        i["id"]
        for i in client.get("/items", params={"tag": "rare", "q": "N10"}, headers=auth("alice")).json()[
            "items"
        ]
    ] == [101]


def test_tag_listings_follow_every_write(client: TestClient, auth: Auth) -> None:
    headers = auth("alice")

    def tagged(tag: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = client.get("/items", params={"tag": tag}, headers=headers).json()[
            "items"
        ]
        return items

    item = client.post("/items", json={"name": "a", "price": 1, "tags": ["x", "y"]}, headers=headers).json()
    path = f"/items/{item['id']}"
    assert tagged("x") == tagged("y") == [item]
    patched = client.patch(path, json={"name": "b", "description": "d"}, headers=headers).json()
    assert tagged("x") == tagged("y") == [patched] == [client.get(path, headers=headers).json()]
    patched = client.patch(path, json={"tags": ["y", "z"]}, headers=headers).json()
    assert (tagged("x"), tagged("y"), tagged("z")) == ([], [patched], [patched])
    patched = client.patch(path, json={"description": None}, headers=headers).json()
    assert tagged("z") == [patched]
    assert "description" in patched
    assert patched["description"] is None
    replaced = client.put(path, json={"name": "c", "price": 2}, headers=headers).json()
    assert replaced["tags"] == []
    assert tagged("y") == tagged("z") == []
    replaced = client.put(path, json={"name": "c", "price": 2, "tags": ["w"]}, headers=headers).json()
    assert tagged("w") == [replaced]
    assert client.delete(path, headers=headers).status_code == 204
    assert tagged("w") == []
    # Another owner's tag partition is another partition, even with lookalike names.
    client.post("/items", json={"name": "a", "price": 1, "tags": ["x"]}, headers=auth("al#TAG#ice"))
    assert tagged("x") == []


def test_tag_writes_survive_lost_replies(client: TestClient, auth: Auth, faults: Any, dynamodb: Any) -> None:
    faults.at_rate(0.5, "lose_reply", seed=5)
    headers = auth("alice")
    for number in range(15):
        response = client.post(
            "/items", json={"name": f"n{number}", "price": 1, "tags": ["t"]}, headers=headers
        )
        assert response.status_code in (201, 503)
    for item_id in range(1, 16, 2):
        assert client.patch(f"/items/{item_id}", json={"quantity": 5}, headers=headers).status_code in (
            200,
            404,
            503,
        )
    for item_id in range(2, 16, 4):
        assert client.delete(f"/items/{item_id}", headers=headers).status_code in (204, 404, 503)
    faults.decide = lambda operation: None
    items = walk(client, auth, limit=100)[0]
    tag_items = walk(client, auth, limit=100, tag="t")[0]
    assert items == tag_items  # every live item has its copy, and no copy outlives its item
    full = client.get("/items", params={"limit": 100}, headers=headers).json()["items"]
    assert full == client.get("/items", params={"limit": 100, "tag": "t"}, headers=headers).json()["items"]
    assert all(item["version"] <= 2 for item in full)  # no write applied twice


def test_a_write_that_loses_the_race_is_409_and_writes_nothing(
    client: TestClient, auth: Auth, dynamodb: Any
) -> None:
    headers = auth("alice")
    item = client.post("/items", json={"name": "a", "price": 1, "tags": ["t"]}, headers=headers).json()
    path = f"/items/{item['id']}"
    raced = iter([True])

    def concurrent_write(**_: Any) -> None:
        if next(raced, False):  # another request changes the item just before our transaction
            dynamodb.update_item(
                TableName=TABLE_NAME,
                Key={"pk": {"S": "OWNER#alice"}, "sk": {"N": str(item["id"])}},
                UpdateExpression="SET version = version + :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )

    get_dynamodb_client().meta.events.register("before-call.dynamodb.TransactWriteItems", concurrent_write)
    response = client.patch(path, json={"quantity": 9}, headers=headers)
    assert response.status_code == 409
    assert response.headers["retry-after"] == "1"
    assert "changed this item" in response.json()["detail"]
    current = client.get(path, headers=headers).json()
    assert current["quantity"] == 0
    assert current["version"] == 2
    assert client.patch(path, json={"quantity": 9}, headers=headers).status_code == 200  # the retry
    raced = iter([False, True])  # the delete's second transaction (the first finds the tags)
    assert client.delete(path, headers=headers).status_code == 409
    assert client.get(path, headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("reason", "status"),
    [("TransactionConflict", 409), ("ThrottlingError", 503), ("ProvisionedThroughputExceeded", 503)],
)
def test_a_transaction_refused_by_dynamodb_is_409_or_503_and_writes_nothing(
    client: TestClient, auth: Auth, reason: str, status: int
) -> None:
    """DynamoDB cancels a transaction for another transaction on the same item or for throttling;
    botocore does not retry TransactionCanceledException, so the API answers at once."""
    from botocore.awsrequest import AWSResponse

    headers = auth("alice")
    item = client.post("/items", json={"name": "a", "price": 1, "tags": ["t"]}, headers=headers).json()

    def cancel(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        body = {
            "Error": {"Code": "TransactionCanceledException", "Message": "injected"},
            "CancellationReasons": [{"Code": reason}, {"Code": "None"}],
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        return AWSResponse("https://dynamodb", 400, {}, None), body  # type: ignore[arg-type]

    get_dynamodb_client().meta.events.register("before-call.dynamodb.TransactWriteItems", cancel)
    response = client.patch(f"/items/{item['id']}", json={"quantity": 5}, headers=headers)
    assert response.status_code == status, response.text
    assert "retry-after" in response.headers
    get_dynamodb_client().meta.events.unregister("before-call.dynamodb.TransactWriteItems", cancel)
    assert client.get(f"/items/{item['id']}", headers=headers).json()["quantity"] == 0


# --- q: a budget, and no cursor to a provably empty remainder ----------------------


def test_q_hands_out_no_cursor_when_no_id_lies_beyond_the_budget(
    client: TestClient, auth: Auth, meter: Meter
) -> None:
    budget = FILTERED_EVALUATION_LIMIT * MAX_QUERIES_PER_PAGE
    for number in range(budget):
        client.post("/items", json={"name": f"n{number}", "price": 1}, headers=auth("alice"))

    calls = meter.measure(lambda: client.get("/items", params={"q": "zzz"}, headers=auth("alice")))
    body = client.get("/items", params={"q": "zzz"}, headers=auth("alice")).json()
    assert body == {"items": [], "next_cursor": None}
    # The budget ended exactly at the last id: the counter proves nothing lies beyond.
    assert len(calls) <= 3, calls
    client.post("/items", json={"name": "zzz", "price": 1}, headers=auth("alice"))
    body = client.get("/items", params={"q": "zzz"}, headers=auth("alice")).json()
    assert body["items"] == []
    assert body["next_cursor"] is not None
    after = client.get(
        "/items", params={"q": "zzz", "cursor": body["next_cursor"]}, headers=auth("alice")
    ).json()
    assert [item["name"] for item in after["items"]] == ["zzz"]
    assert after["next_cursor"] is None


def test_q_returns_as_soon_as_the_page_is_full(client: TestClient, auth: Auth, meter: Meter) -> None:
    for number in range(250):
        client.post("/items", json={"name": f"match {number}", "price": 1}, headers=auth("alice"))
    calls = meter.measure(
        lambda: client.get("/items", params={"q": "MATCH", "limit": 5}, headers=auth("alice"))
    )
    assert len(calls) <= 1, calls  # full from the first Query: no second, no counter


# --- the large-owner capacity ledger ----------------------------------------------

# The bounds docs/performance.md states, for the default page of 20 and rows of ~150 bytes.
BOUNDS = {
    "unfiltered": {"calls": 1, "evaluated": 21, "read_units": 1},
    "tag": {"calls": 1, "evaluated": TAGGED, "read_units": 1},
    "q": {"calls": 3, "evaluated": 201, "read_units": 11},
    "q+tag": {"calls": 1, "evaluated": TAGGED, "read_units": 1},
}


def test_large_owner_ledger(
    client: TestClient, auth: Auth, meter: Meter, large_owner: dict[str, Any]
) -> None:
    headers = auth("big")
    live, tagged = large_owner["live"], large_owner["tagged"]
    assert len(live) == 7_000

    def cost(**params: Any) -> dict[str, int]:
        calls = meter.measure(lambda: client.get("/items", params=params, headers=headers))
        return {
            "calls": len(calls),
            "evaluated": sum(call.evaluated for call in calls),
            "read_units": sum(call.read_units for call in calls),
        }

    def within(measured: dict[str, int], bound: dict[str, int]) -> bool:
        return all(measured[name] <= bound[name] for name in bound)

    # Unfiltered: the same cost on the first page and deep in the deleted-through range.
    first = client.get("/items", headers=headers).json()
    assert [item["id"] for item in first["items"]] == live[:20]
    assert cost() == BOUNDS["unfiltered"]
    deep = client.get("/items", params={"cursor": first["next_cursor"]}, headers=headers).json()
    assert [item["id"] for item in deep["items"]] == live[20:40]
    assert cost(cursor=first["next_cursor"]) == BOUNDS["unfiltered"]
    # Pages of 100 through the deleted-through range: each full, each one Query of 101 rows.
    cursor, seen = None, []
    for _ in range(5):
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        assert cost(**params) == {"calls": 1, "evaluated": 101, "read_units": 5}
        body = client.get("/items", params=params, headers=headers).json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
    assert seen == live[:500]

    # tag: only the 10 tagged rows are read, in one Query.
    assert cost(tag="rare") == BOUNDS["tag"]
    assert [
        item["id"] for item in client.get("/items", params={"tag": "rare"}, headers=headers).json()["items"]
    ] == tagged

    # q: a sparse match spends the budget (2 Queries of 100, then the counter) and says where to resume.
    measured = cost(q="item 9999")
    assert within(measured, BOUNDS["q"]), measured
    assert client.get("/items", params={"q": "item 9999"}, headers=headers).json()["next_cursor"]

    # q + tag: narrowed by the tag first.
    measured = cost(q="ITEM", tag="rare")
    assert within(measured, BOUNDS["q+tag"]), measured
