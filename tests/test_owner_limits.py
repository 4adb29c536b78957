"""Per-owner limits (issue 23): each owner's reads and write units hold across containers, beyond
them a 429 with Retry-After and nothing read, written or claimed; other owners are not slowed."""

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import dependencies, limits
from app.limits import WINDOW_SECONDS, OwnerRates
from tests.conftest import IDEMPOTENCY_TABLE_NAME, TABLE_NAME
from tests.faults import injected_faults

Auth = Callable[[str], dict[str, str]]
# The start of a window, ahead of the real clock: DynamoDB Local deletes rows past their TTL.
START = float((int(time.time()) // WINDOW_SECONDS + 1000) * WINDOW_SECONDS)


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The limiter's clock, fixed at the start of a window; tests move it."""
    moment = [START]
    monkeypatch.setattr(limits, "clock", lambda: moment[0])
    return moment


@pytest.fixture
def limited(monkeypatch: pytest.MonkeyPatch, environment: None) -> None:
    """2 reads and 3 write units a second per owner: 20 reads and 30 units a window."""
    monkeypatch.setenv("OWNER_READS_PER_SECOND", "2")
    monkeypatch.setenv("OWNER_WRITE_UNITS_PER_SECOND", "3")


def _items(dynamodb: Any, owner: str) -> int:
    rows = dynamodb.scan(TableName=TABLE_NAME)["Items"]  # a test-side look at the whole table
    return sum(1 for row in rows if row["pk"]["S"].endswith(owner) and "name" in row)


def test_reads_beyond_the_owners_rate_are_429_and_other_owners_are_served(
    limited: None, now: list[float], client: TestClient, auth: Auth
) -> None:
    answers = [client.get("/items", headers=auth("alice")).status_code for _ in range(20)]
    assert answers == [200] * 20
    refused = client.get("/items/1", headers=auth("alice"))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(WINDOW_SECONDS)
    assert refused.json() == {
        "detail": "Too many requests: this owner may make 2 reads a second (averaged over 10 s); "
        f"retry after {WINDOW_SECONDS} s"
    }
    assert client.head("/items", headers=auth("alice")).status_code == 429  # HEAD is a read
    # Another owner has an allowance of its own.
    assert [client.get("/items", headers=auth("bob")).status_code for _ in range(20)] == [200] * 20
    now[0] += 7
    assert client.get("/items", headers=auth("alice")).headers["retry-after"] == "3"
    now[0] += 3  # the next window
    assert client.get("/items", headers=auth("alice")).status_code == 200


def test_writes_are_weighed_by_their_rows_and_size_and_a_refused_one_writes_nothing(
    limited: None, now: list[float], client: TestClient, auth: Auth, dynamodb: Any
) -> None:
    plain = {"name": "Lamp", "price": 1}
    heavy = {"name": "Hose", "price": 1, "tags": [f"t{n}" for n in range(20)], "description": "x" * 1500}
    # 20 tags in a 2 KB body: 21 rows x 2 KB = 42 units, over a whole window's 30; it may go alone.
    assert client.post("/items", json=heavy, headers=auth("alice")).status_code == 201
    keyed = {**auth("alice"), "Idempotency-Key": "lamp-1"}
    refused = client.post("/items", json=plain, headers=keyed)
    assert refused.status_code == 429
    assert "3 write units a second" in refused.json()["detail"]
    assert _items(dynamodb, "alice") == 1  # nothing written
    assert client.delete("/items/1", headers=auth("alice")).status_code == 429
    assert _items(dynamodb, "alice") == 1
    # Plain writes of another owner are 1 unit each: 30 in the window.
    statuses = [client.post("/items", json=plain, headers=auth("bob")).status_code for _ in range(31)]
    assert statuses == [201] * 30 + [429]
    now[0] += WINDOW_SECONDS
    # The key was never claimed by the refused request: its first answer comes now.
    assert client.post("/items", json=plain, headers=keyed).status_code == 201
    assert client.post("/items", json=plain, headers=keyed).headers["idempotent-replayed"] == "true"


def test_the_allowance_holds_across_containers(limited: None, now: list[float], dynamodb: Any) -> None:
    # Two containers serving one owner, turn about: together they never pass the window's
    # allowance, and their unspent leases never cost the owner more than a few requests.
    containers = [
        OwnerRates(lambda: dynamodb, IDEMPOTENCY_TABLE_NAME, {"reads": 100, "writes": 100}) for _ in range(2)
    ]
    granted = 0
    for turn in range(150):
        try:
            containers[turn % 2].take("alice", "reads")
            granted += 1
        except limits.RateLimited:
            pass
    allowance = 10 * WINDOW_SECONDS
    assert allowance - 2 * (allowance // 16) <= granted <= allowance


def test_a_lease_dynamodb_cannot_answer_lets_the_request_through(
    limited: None, now: list[float], client: TestClient, auth: Auth
) -> None:
    with injected_faults(dependencies.get_single_attempt_client()) as faults:
        faults.decide = lambda operation: "throttle" if operation == "UpdateItem" else None
        assert [client.get("/items", headers=auth("alice")).status_code for _ in range(25)] == [200] * 25
        # Every lease refused, at most one attempt per request (the single-attempt client).
        assert 1 <= faults.counts["throttle"] <= 25


@pytest.fixture
def deployed_defaults(monkeypatch: pytest.MonkeyPatch, environment: None) -> None:
    monkeypatch.delenv("OWNER_READS_PER_SECOND")
    monkeypatch.delenv("OWNER_WRITE_UNITS_PER_SECOND")
    monkeypatch.delenv("OWNER_IDEMPOTENCY_KEYS_PER_HOUR")


def test_what_the_limits_cost(
    deployed_defaults: None, now: list[float], client: TestClient, auth: Auth
) -> None:
    # As deployed (50 reads a second): the first read of a window goes on credit (no call), the
    # second leases itself and the first, then leases double: 20 reads cost 5 small writes.
    leases: list[int] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        if params["TableName"] == IDEMPOTENCY_TABLE_NAME:
            leases.append(int(params["ExpressionAttributeValues"][":size"]["N"]))

    client.get("/health")  # settings and clients made
    dependencies.get_single_attempt_client().meta.events.register(
        "provide-client-params.dynamodb.UpdateItem", record
    )
    client.get("/items", headers=auth("alice"))
    assert leases == []
    for _ in range(19):
        client.get("/items", headers=auth("alice"))
    assert leases == [2, 2, 4, 8, 16]


def test_an_owner_past_its_allowance_costs_no_more_calls(
    limited: None, now: list[float], client: TestClient, auth: Auth
) -> None:
    # A flood past the allowance is refused by the container itself until the window ends.
    calls: list[str] = []
    client.get("/health")
    dependencies.get_single_attempt_client().meta.events.register(
        "provide-client-params.dynamodb.UpdateItem", lambda params, **_: calls.append(params["TableName"])
    )
    answers = [client.get("/items", headers=auth("alice")).status_code for _ in range(60)]
    assert answers == [200] * 20 + [429] * 40
    assert len(calls) <= 21  # at most one lease per granted read (2 reads a second: leases of 1), one refused


def test_a_flood_by_one_owner_leaves_another_owners_work_untouched(
    limited: None, now: list[float], client: TestClient, auth: Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The noisy neighbour: alice fills her storage, then floods reads and heavily tagged writes;
    # bob works normally.
    monkeypatch.setenv("OWNER_ITEMS_STORED", "12")
    dependencies.get_settings.cache_clear()
    dependencies.get_item_store.cache_clear()
    stored = []
    for _ in range(3):  # three windows of plain creates: 30 units each, 12 items in all
        stored += [
            client.post("/items", json={"name": "L", "price": 1}, headers=auth("alice")).status_code
            for _ in range(10)
        ]
        now[0] += WINDOW_SECONDS
    assert stored == [201] * 12 + [403] * 18
    heavy = {"name": "Hose", "price": 1, "tags": [f"t{n}" for n in range(20)]}
    alice = [client.post("/items", json=heavy, headers=auth("alice")).status_code for _ in range(10)]
    alice += [client.get("/items", headers=auth("alice")).status_code for _ in range(40)]
    assert 429 in alice
    assert 403 in alice
    headers = auth("bob")
    created = client.post("/items", json={"name": "Lamp", "price": 3, "tags": ["home"]}, headers=headers)
    path = f"/items/{created.json()['id']}"
    answers = [
        created.status_code,
        client.get(path, headers=headers).status_code,
        client.get("/items?tag=home", headers=headers).status_code,
        client.patch(path, json={"price": 4}, headers=headers).status_code,
        client.delete(path, headers=headers).status_code,
    ]
    assert answers == [201, 200, 200, 200, 204]


@pytest.mark.parametrize("body", [b"\xff<\xfe", b'{"name": "a", "price": 1', b"[]", b'{"tags": 5}'])
def test_a_body_that_is_not_an_item_is_weighed_without_failing(
    limited: None, now: list[float], client: TestClient, auth: Auth, body: bytes
) -> None:
    headers = {**auth("alice"), "Content-Type": "application/json", "Idempotency-Key": "k"}
    assert client.post("/items", content=body, headers=headers).status_code == 422


@pytest.fixture
def few_keys(monkeypatch: pytest.MonkeyPatch, environment: None) -> None:
    monkeypatch.setenv("OWNER_IDEMPOTENCY_KEYS_PER_HOUR", "3")


def test_idempotency_keys_beyond_the_owners_hourly_allowance_are_429_and_store_nothing(
    few_keys: None, now: list[float], client: TestClient, auth: Auth
) -> None:
    # Each Idempotency-Key request may store a record for a day: the hourly allowance bounds them.
    plain = {"name": "Lamp", "price": 1}
    for number in range(3):
        keyed = {**auth("alice"), "Idempotency-Key": f"k{number}"}
        assert client.post("/items", json=plain, headers=keyed).status_code == 201
    refused = client.post("/items", json=plain, headers={**auth("alice"), "Idempotency-Key": "k3"})
    assert refused.status_code == 429
    assert refused.json()["detail"].startswith(
        "Too many Idempotency-Key requests: this owner may send 3 an hour"
    )
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 3600
    assert [item["name"] for item in client.get("/items", headers=auth("alice")).json()["items"]] == [
        "Lamp"
    ] * 3
    # A retry of a key already answered is a replay, allowance used up or not: a client whose
    # reply was lost always learns what became of its request.
    replay = client.post("/items", json=plain, headers={**auth("alice"), "Idempotency-Key": "k0"})
    assert (replay.status_code, replay.headers["idempotent-replayed"]) == (201, "true")
    # Without a key the owner writes on; another owner has keys of its own.
    assert client.post("/items", json=plain, headers=auth("alice")).status_code == 201
    assert (
        client.post("/items", json=plain, headers={**auth("bob"), "Idempotency-Key": "k3"}).status_code == 201
    )
    now[0] += retry_after  # the next hour: the refused key's first answer
    assert (
        client.post("/items", json=plain, headers={**auth("alice"), "Idempotency-Key": "k3"}).status_code
        == 201
    )


def _rates(dynamodb: Any, reads_per_window: int) -> OwnerRates:
    return OwnerRates(lambda: dynamodb, IDEMPOTENCY_TABLE_NAME, {"reads": reads_per_window, "writes": 0})


def _spend(rates: OwnerRates, cost: int, times: int) -> int:
    served = 0
    for _ in range(times):
        try:
            rates.take("alice", "reads", cost)
            served += 1
        except limits.RateLimited:
            pass
    return served


def test_what_a_lease_leaves_over_is_kept_for_the_next_request(now: list[float], dynamodb: Any) -> None:
    # Writes of 21 units against 500 a window: all but the last partial write's worth is usable.
    served = _spend(_rates(dynamodb, 500), 21, 30)
    assert served == 500 // 21


def test_a_refused_large_request_does_not_refuse_smaller_ones_that_fit(
    now: list[float], dynamodb: Any
) -> None:
    rates = _rates(dynamodb, 500)
    assert _spend(rates, 336, 2) == 1  # the second does not fit
    assert _spend(rates, 1, 1) == 1  # 164 units are left: a small request goes through
    assert _spend(rates, 336, 1) == 0  # and the large one is refused without asking again


def test_concurrent_requests_in_one_container_lose_no_lease(now: list[float], dynamodb: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    rates = _rates(dynamodb, 500)
    with ThreadPoolExecutor(max_workers=4) as pool:
        served = sum(pool.map(lambda _: _spend(rates, 1, 100), range(4)))
    assert served == 400  # within the allowance, all served
    assert _spend(rates, 1, 200) == 100  # and exactly the rest of it after


def test_forgetting_past_windows_keeps_the_leases_of_longer_windows(now: list[float]) -> None:
    # A container that serves many owners forgets leases of windows that are over, each kind by its
    # own window: an hour's Idempotency-Key lease outlives many 10-second read windows.
    sizes: list[int] = []

    class Table:
        @staticmethod
        def update_item(**params: Any) -> None:
            sizes.append(int(params["ExpressionAttributeValues"][":size"]["N"]))

    rates = OwnerRates(lambda: Table, IDEMPOTENCY_TABLE_NAME, {"reads": 500, "writes": 0, "keys": 10_000})
    for _ in range(4):
        rates.take("alice", "keys")  # a credit, a lease of 1 + 1, a lease of 2 (1 left), then that 1
    now[0] += WINDOW_SECONDS  # a new read window, the same hour
    for number in range(limits._MAX_OWNERS + 1):
        rates.take(f"reader-{number}", "reads")  # each on credit: no call
    rates.take("alice", "keys")
    assert sizes == [2, 2, 4]  # alice's lease was kept: it doubles on, not a fresh credit


@pytest.fixture
def quota(monkeypatch: pytest.MonkeyPatch, environment: None) -> int:
    """Each owner may store 3 items."""
    monkeypatch.setenv("OWNER_ITEMS_STORED", "3")
    return 3


def _counter(dynamodb: Any, owner: str) -> dict[str, Any]:
    from items_core.rows import COUNTER_SK, owner_pk

    key = {"pk": {"S": owner_pk(owner)}, "sk": {"N": str(COUNTER_SK)}}
    item: dict[str, Any] = dynamodb.get_item(TableName=TABLE_NAME, Key=key, ConsistentRead=True)["Item"]
    return item


def test_a_create_beyond_the_items_quota_is_a_403_that_names_it_and_writes_nothing(
    quota: int, client: TestClient, auth: Auth, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = {"name": "Lamp", "price": 1}
    tagged = {"name": "Hose", "price": 1, "tags": ["garden", "sale"]}
    for body in (plain, tagged, plain):
        assert client.post("/items", json=body, headers=auth("alice")).status_code == 201
    for body in (plain, tagged):
        keyed = {**auth("alice"), "Idempotency-Key": f"over-{len(body)}"}
        refused = client.post("/items", json=body, headers=keyed)
        assert refused.status_code == 403
        assert "retry-after" not in refused.headers
        assert refused.json() == {
            "detail": "This owner already stores 3 items, the most its quota allows (OwnerItemsStored);"
            " nothing was created. Delete items to make room."
        }
    # Nothing written: no item, no tag copy, no id given out.
    assert _items(dynamodb, "alice") == 3
    assert client.get("/items", params={"tag": "sale"}, headers=auth("alice")).json()["items"][0]["id"] == 2
    assert int(_counter(dynamodb, "alice")["last_id"]["N"]) == 3
    # Another owner has a quota of its own; a delete (tagged or not) makes room.
    assert client.post("/items", json=plain, headers=auth("bob")).status_code == 201
    assert client.delete("/items/2", headers=auth("alice")).status_code == 204
    retried = client.post("/items", json=tagged, headers={**auth("alice"), "Idempotency-Key": "over-4"})
    assert retried.status_code == 201  # the refused key was not kept: sent again, it runs
    assert retried.json()["id"] == 4
    assert client.post("/items", json=plain, headers=auth("alice")).status_code == 403
    # An operator lowering the quota below what an owner stores: the answer says both numbers.
    monkeypatch.setenv("OWNER_ITEMS_STORED", "2")
    dependencies.get_settings.cache_clear()
    dependencies.get_item_store.cache_clear()
    lowered = client.post("/items", json=plain, headers=auth("alice"))
    assert (lowered.status_code, lowered.json()["detail"]) == (
        403,
        "This owner stores 3 items; its quota allows 2 (OwnerItemsStored); nothing was created."
        " Delete items to make room.",
    )
    # Updates of stored items are not creates: the quota does not stop them.
    assert client.patch("/items/1", json={"tags": ["x"]}, headers=auth("alice")).status_code == 200
    assert int(_counter(dynamodb, "alice")["live_items"]["N"]) == 3


def test_the_items_quota_holds_for_creates_racing_in_many_containers(
    quota: int, client: TestClient, auth: Auth, dynamodb: Any
) -> None:
    """Ten containers (each its own client) create at once for one owner: three items are stored."""
    from concurrent.futures import ThreadPoolExecutor

    from app.store.errors import ItemsQuotaFull
    from app.store.items import ItemStore
    from items_core.layout import LayoutReader
    from items_core.models import ItemCreate

    def container_creates(_: int) -> str:
        client = dependencies.aws_client("dynamodb")
        store = ItemStore(client, TABLE_NAME, LayoutReader(lambda: client, TABLE_NAME), items_quota=quota)
        try:
            store.create("alice", ItemCreate(name="Lamp", price=1))
        except ItemsQuotaFull:
            return "full"
        return "created"

    with ThreadPoolExecutor(10) as pool:
        outcomes = sorted(pool.map(container_creates, range(10)))
    assert outcomes == ["created"] * 3 + ["full"] * 7
    assert _items(dynamodb, "alice") == 3
    assert int(_counter(dynamodb, "alice")["live_items"]["N"]) == 3


def test_lost_replies_neither_count_twice_nor_refuse_a_create(
    quota: int, client: TestClient, auth: Auth, dynamodb: Any, faults: Any
) -> None:
    """botocore resends a count update whose reply was lost: the item is counted once."""
    attempts = iter(range(1000))

    def every_other_write_loses_its_reply(operation: str) -> str | None:
        if operation in {"UpdateItem", "TransactWriteItems"} and next(attempts) % 2 == 0:
            return "lose_reply"
        return None

    faults.decide = every_other_write_loses_its_reply
    for _ in range(3):
        assert (
            client.post("/items", json={"name": "Lamp", "price": 1}, headers=auth("alice")).status_code == 201
        )
    assert client.delete("/items/1", headers=auth("alice")).status_code == 204
    assert faults.counts["lose_reply"] >= 4
    faults.decide = lambda operation: None
    assert int(_counter(dynamodb, "alice")["live_items"]["N"]) == 2 == _items(dynamodb, "alice")
    assert client.post("/items", json={"name": "Lamp", "price": 1}, headers=auth("alice")).status_code == 201
    assert client.post("/items", json={"name": "Lamp", "price": 1}, headers=auth("alice")).status_code == 403


def test_a_delete_whose_count_update_fails_is_still_done_and_the_count_errs_strict(
    quota: int, client: TestClient, auth: Auth, dynamodb: Any, capsys: Any
) -> None:
    assert client.post("/items", json={"name": "Lamp", "price": 1}, headers=auth("alice")).status_code == 201
    # The count update makes one attempt (the single-attempt client), and its failure is the delete's
    # own business: the item is deleted either way.
    with injected_faults(dependencies.get_single_attempt_client()) as faults:
        faults.decide = lambda operation: "throttle" if operation == "UpdateItem" else None
        assert client.delete("/items/1", headers=auth("alice")).status_code == 204
        assert faults.counts["throttle"] == 1
    assert _items(dynamodb, "alice") == 0
    assert int(_counter(dynamodb, "alice")["live_items"]["N"]) == 1  # one too many, never too few
    assert "the deleted item was not taken off its owner's count" in capsys.readouterr().out


def test_the_quota_waits_until_the_upgrade_has_counted_every_owner(
    quota: int, client: TestClient, auth: Auth, dynamodb: Any
) -> None:
    """While a pass runs, counts may be short (items of the release before): no create is refused."""
    from upgrade.backfill import reset

    reset(dynamodb, TABLE_NAME)
    dependencies.get_layout_reader.cache_clear()
    dependencies.get_item_store.cache_clear()
    statuses = [
        client.post("/items", json={"name": "Lamp", "price": 1}, headers=auth("alice")).status_code
        for _ in range(4)
    ]
    assert statuses == [201] * 4


def test_the_items_quota_costs_a_create_no_extra_call_and_a_refusal_one(
    quota: int, client: TestClient, auth: Auth, calls: list[str]
) -> None:
    """The count rides on the id counter's UpdateItem; a refusal is that one failed condition."""
    for _ in range(3):
        calls.clear()
        assert (
            client.post("/items", json={"name": "Lamp", "price": 1}, headers=auth("alice")).status_code == 201
        )
        assert len(calls) <= 2, calls  # the id (and the count), then the item: as without a quota
    calls.clear()
    assert client.post("/items", json={"name": "Lamp", "price": 1}, headers=auth("alice")).status_code == 403
    assert len(calls) <= 1, calls
    calls.clear()
    assert client.delete("/items/1", headers=auth("alice")).status_code == 204
    assert len(calls) <= 1, calls  # and the count update, on the single-attempt client


def test_writes_to_a_tagged_item_are_charged_for_the_rows_they_write_not_the_body_they_send(
    limited: None, now: list[float], client: TestClient, auth: Auth
) -> None:
    """A PATCH without tags rewrites the item's 20 copies: 21 units, charged before they are written."""
    tags = {"name": "Hose", "price": 1, "tags": [f"t{n}" for n in range(20)]}
    assert client.post("/items", json=tags, headers=auth("alice")).status_code == 201  # 21 of 30 units
    now[0] += WINDOW_SECONDS
    assert client.patch("/items/1", json={"quantity": 2}, headers=auth("alice")).status_code == 200  # 21
    refused = client.patch("/items/1", json={"quantity": 3}, headers=auth("alice"))
    assert refused.status_code == 429
    assert "3 write units a second" in refused.json()["detail"]
    assert client.get("/items/1", headers=auth("bob")).status_code == 404  # (reads: another allowance)
    now[0] += WINDOW_SECONDS
    item = client.get("/items/1", headers=auth("alice")).json()
    assert (item["quantity"], item["version"]) == (2, 2)  # the refused PATCH wrote nothing
    # A PUT without tags deletes the 20 copies (21 rows); then a delete of a plain item is 2 rows.
    assert client.put("/items/1", json={"name": "Hose", "price": 1}, headers=auth("alice")).status_code == 200
    assert client.put("/items/1", json={"name": "Hose", "price": 2}, headers=auth("alice")).status_code == 200
    now[0] += WINDOW_SECONDS
    assert client.post("/items", json=tags, headers=auth("alice")).status_code == 201
    now[0] += WINDOW_SECONDS
    assert client.delete("/items/2", headers=auth("alice")).status_code == 204  # 22 rows
    assert client.delete("/items/1", headers=auth("alice")).status_code == 204  # 1 (+ the count)
    assert client.post("/items", json=tags, headers=auth("alice")).status_code == 429  # 21 more: no room


def test_a_delete_takes_one_off_a_counter_that_has_no_write_token(
    quota: int, client: TestClient, auth: Auth, dynamodb: Any
) -> None:
    """A counter row no write of this release touched (the pass wrote only its count) still counts down.

    (DynamoDB Local reads `write_token <> :token` on a missing attribute as true; the update's
    explicit attribute_not_exists is there in case DynamoDB reads such a comparison as false, as the
    id counter's own condition already assumes.)"""
    from items_core.rows import COUNTER_SK, owner_pk

    assert client.post("/items", json={"name": "Lamp", "price": 1}, headers=auth("alice")).status_code == 201
    dynamodb.update_item(
        TableName=TABLE_NAME,
        Key={"pk": {"S": owner_pk("alice")}, "sk": {"N": str(COUNTER_SK)}},
        UpdateExpression="REMOVE write_token",
    )
    assert client.delete("/items/1", headers=auth("alice")).status_code == 204
    assert int(_counter(dynamodb, "alice")["live_items"]["N"]) == 0
