"""Upgrades and rollbacks over live data, on DynamoDB Local, with the previous release's own code.

The previous release (e21d48b: no tag copies, idempotency records in the items
table) runs from git in a child process (tests/previous_release.py) on the same
tables as the current code. Each test plays what operators do: deploy over the
older data, serve before and after the backfill, roll back, roll forward.
"""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from devtools import dynamodb_local
from items_core.layout import LAYOUT_KEY, STALE
from tests.conftest import TABLE_NAME
from tests.previous_release import PreviousRelease
from upgrade import backfill
from upgrade.backfill import GRACE_SECONDS, Backfill, reset

pytestmark = pytest.mark.xdist_group("previous_release")

PREVIOUS = "e21d48b"  # the layout before tag copies
CURSOR_KEY = "compatibility-cursor-key-of-at-least-32-bytes"  # the stack's secret, kept across deploys
Auth = Callable[[str], dict[str, str]]


@pytest.fixture(scope="module")
def previous(dynamodb_server: dynamodb_local.DynamoDBLocal) -> Iterator[PreviousRelease]:
    """The previous release, serving the suite's items table (recreated per test under one name)."""
    with PreviousRelease(
        PREVIOUS,
        endpoint_url=dynamodb_server.endpoint,
        table_name=TABLE_NAME,
        extra_env={"CURSOR_SIGNING_KEY": CURSOR_KEY},
    ) as release:
        yield release


@pytest.fixture
def older_table(dynamodb: Any) -> Any:
    """The items table as the previous release left it: no layout row (it never wrote one)."""
    dynamodb.delete_item(TableName=TABLE_NAME, Key=LAYOUT_KEY)
    return dynamodb


def _deploy(dynamodb: Any) -> None:
    """What the LayoutUpgrade custom resource's Create or Update does at a deploy (upgrade.handler)."""
    reset(dynamodb, TABLE_NAME)
    _new_containers()


def _roll_back(dynamodb: Any) -> None:
    """What its Delete does when a rollback removes it (upgrade.handler): no pass until a deploy."""
    reset(dynamodb, TABLE_NAME, state=STALE)
    _new_containers()


def _new_containers() -> None:
    """A deploy starts new containers: nothing read before is cached."""
    from app import dependencies

    dependencies.get_layout_reader.cache_clear()
    dependencies.get_item_store.cache_clear()


def _backfill_to_the_end(dynamodb: Any) -> list[backfill.Progress]:
    """The schedule's runs, after the grace period, until the pass is complete."""
    now = [0.0]
    row = dynamodb.get_item(TableName=TABLE_NAME, Key=LAYOUT_KEY)["Item"]
    now[0] = float(row["not_before"]["N"])
    runs = []
    worker = Backfill(
        dynamodb, TABLE_NAME, units_per_second=10_000, clock=lambda: now[0], sleep=lambda _: None
    )
    for _ in range(50):
        runs.append(worker.run(30))
        if runs[-1].state == "complete":
            _new_containers()
            return runs
        now[0] += 60
    raise AssertionError(f"the backfill did not finish: {runs[-1]}")


def _ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _tag_partitions(dynamodb: Any) -> dict[tuple[str, int], int]:
    """Every tag copy in the table: (partition, id) -> version (test-side inspection only)."""
    rows = dynamodb.scan(TableName=TABLE_NAME)["Items"]
    return {
        (row["pk"]["S"], int(row["sk"]["N"])): int(row["version"]["N"])
        for row in rows
        if row["pk"]["S"].startswith("TAG#")
    }


def _expected_copies(client: TestClient, auth: Auth, owners: list[str]) -> dict[tuple[str, int], int]:
    """The copies the current layout calls for, from what the API serves (every live item, each tag)."""
    from items_core.rows import tag_pk

    expected = {}
    for owner in owners:
        for item in client.get("/items", params={"limit": 100}, headers=auth(owner)).json()["items"]:
            for tag in item["tags"]:
                expected[(tag_pk(owner, tag), item["id"])] = item["version"]
    return expected


def _older_dataset(previous: PreviousRelease) -> dict[str, Any]:
    """What the previous release writes: tagged, untagged, deleted and re-tagged items, and keys."""

    def call(method: str, path: str, owner: str = "alice", **kwargs: Any) -> Any:
        response = previous.request(method, path, owner=owner, **kwargs)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response

    call("POST", "/items", json={"name": "Red sale", "price": 1, "tags": ["red", "sale"]})  # 1
    call("POST", "/items", json={"name": "Plain", "price": 2})  # 2
    call("POST", "/items", json={"name": "Gone", "price": 3, "tags": ["sale"]})  # 3
    call("DELETE", "/items/3")
    call("POST", "/items", json={"name": "Moved", "price": 4, "tags": ["red"]})  # 4
    call("PATCH", "/items/4", json={"tags": ["blue"]})
    call("POST", "/items", owner="bob", json={"name": "Bob's", "price": 5, "tags": ["sale"]})  # bob 1
    return {
        "post": call(
            "POST", "/items", headers={"Idempotency-Key": "k-post"}, json={"name": "Keyed", "price": 6}
        ),  # 5
        "patch": call("PATCH", "/items/2", headers={"Idempotency-Key": "k-patch"}, json={"quantity": 7}),
        "delete": call("DELETE", "/items/5", headers={"Idempotency-Key": "k-delete"}),
    }


def _check_listings(client: TestClient, auth: Auth) -> None:
    alice, bob = auth("alice"), auth("bob")
    assert _ids(client.get("/items", headers=alice)) == [1, 2, 4]
    assert _ids(client.get("/items", params={"tag": "sale"}, headers=alice)) == [1]
    assert _ids(client.get("/items", params={"tag": "red"}, headers=alice)) == [1]
    assert _ids(client.get("/items", params={"tag": "blue"}, headers=alice)) == [4]
    assert _ids(client.get("/items", params={"tag": "sale", "q": "RED"}, headers=alice)) == [1]
    assert _ids(client.get("/items", params={"tag": "sale", "limit": 1}, headers=bob)) == [1]
    assert client.get("/items/3", headers=alice).status_code == 404
    assert client.get("/items/4", headers=alice).json()["tags"] == ["blue"]


def test_the_current_release_serves_the_previous_releases_data_before_during_and_after_the_backfill(
    previous: PreviousRelease, older_table: Any, client: TestClient, auth: Auth
) -> None:
    keys = _older_dataset(previous)
    alice = auth("alice")

    # The first requests after the deploy, before the custom resource has run: every route is right.
    _check_listings(client, auth)
    # Keys the previous release completed replay, with their original answers.
    replay = client.post(
        "/items", json={"name": "Keyed", "price": 6}, headers={**alice, "Idempotency-Key": "k-post"}
    )
    assert (replay.status_code, replay.json()) == (201, keys["post"].json())
    assert replay.headers["location"] == keys["post"].headers["location"]
    patch = client.patch("/items/2", json={"quantity": 7}, headers={**alice, "Idempotency-Key": "k-patch"})
    assert (patch.status_code, patch.json()) == (200, keys["patch"].json())
    gone = client.delete("/items/5", headers={**alice, "Idempotency-Key": "k-delete"})
    assert gone.status_code == 204
    reused = client.post(
        "/items", json={"name": "Other", "price": 1}, headers={**alice, "Idempotency-Key": "k-post"}
    )
    assert reused.status_code == 422  # the key was used for another request, by either release
    assert _ids(client.get("/items", headers=alice)) == [1, 2, 4]  # nothing ran twice

    # The deploy's custom resource; the pass starts after its grace period. A partial run:
    _deploy(older_table)
    row = older_table.get_item(TableName=TABLE_NAME, Key=LAYOUT_KEY)["Item"]
    now = [float(row["not_before"]["N"])]

    def clock() -> float:
        now[0] += 1  # each call to the clock is a second: the run stops after a few rows
        return now[0]

    partial = Backfill(older_table, TABLE_NAME, units_per_second=10_000, clock=clock, sleep=lambda _: None)
    assert partial.run(6).state == "backfilling"
    _check_listings(client, auth)  # mid-pass

    _backfill_to_the_end(older_table)
    _check_listings(client, auth)  # from the copies now
    assert _tag_partitions(older_table) == _expected_copies(client, auth, ["alice", "bob"])
    # Each owner's items are counted (not the release before's tombstones among them).
    assert (_live_items(older_table, "alice"), _live_items(older_table, "bob")) == (3, 1)
    # The earlier keys still replay after the backfill (for their 24 hours).
    again = client.delete("/items/5", headers={**alice, "Idempotency-Key": "k-delete"})
    assert again.status_code == 204


def test_what_either_release_writes_the_other_reads(
    previous: PreviousRelease,
    older_table: Any,
    client: TestClient,
    auth: Auth,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app import dependencies

    monkeypatch.setenv("CURSOR_SIGNING_KEY", CURSOR_KEY)
    dependencies.get_settings.cache_clear()
    dependencies.get_cursor_signer.cache_clear()
    _older_dataset(previous)
    # A walk through a listing goes on across the deploy: the cursor format and key are kept.
    first = previous.request("GET", "/items", owner="alice", params={"limit": 1}).json()
    assert [item["id"] for item in first["items"]] == [1]
    rest = client.get("/items", params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth("alice"))
    assert _ids(rest) == [2, 4]
    _deploy(older_table)
    _backfill_to_the_end(older_table)
    alice = auth("alice")
    new = client.post("/items", json={"name": "New", "price": 8, "tags": ["red"]}, headers=alice).json()
    client.patch("/items/1", json={"tags": ["sale"]}, headers=alice)
    client.delete("/items/2", headers=alice)

    # The previous release reads what the current one wrote, through every route it has.
    # (the same item; the previous release does not write the representation's newer `etag` field)
    assert previous.request("GET", f"/items/{new['id']}", owner="alice").json() == {
        key: value for key, value in new.items() if key != "etag"
    }
    listed = previous.request("GET", "/items", owner="alice", params={"tag": "red"}).json()
    assert [item["id"] for item in listed["items"]] == [new["id"]]
    assert previous.request("GET", "/items/2", owner="alice").status_code == 404
    assert [item["id"] for item in previous.request("GET", "/items", owner="alice").json()["items"]] == [
        1,
        4,
        new["id"],
    ]
    # And the current release reads what the previous one writes next (forward again).
    previous.request("PATCH", f"/items/{new['id']}", owner="alice", json={"name": "Renamed"})
    assert client.get(f"/items/{new['id']}", headers=alice).json()["name"] == "Renamed"


def test_a_rollback_and_roll_forward_leave_no_stale_or_missing_listing_entries(
    previous: PreviousRelease, dynamodb: Any, client: TestClient, auth: Auth
) -> None:
    # The current release, with its copies.
    alice = auth("alice")
    for name, tags in [("a", ["x", "y"]), ("b", ["x"]), ("c", ["y"]), ("d", [])]:
        assert (
            client.post("/items", json={"name": name, "price": 1, "tags": tags}, headers=alice).status_code
            == 201
        )

    # Rolled back to the previous release (redeploying it removes the custom resource: its Delete
    # marks the data stale). A scheduled run left over from the cleanup starts no pass meanwhile.
    _roll_back(dynamodb)
    later = Backfill(dynamodb, TABLE_NAME, units_per_second=10_000, clock=lambda: 4e9, sleep=lambda _: None)
    assert later.run(30).state == "waiting"
    for method, path, body in [
        ("DELETE", "/items/1", None),  # tagged x, y: its copies stay behind
        ("PATCH", "/items/2", {"tags": ["y"]}),  # leaves x, joins y
        ("PATCH", "/items/3", {"tags": []}),  # leaves every tag
        ("PATCH", "/items/4", {"tags": ["x"]}),  # joins x
        ("POST", "/items", {"name": "e", "price": 1, "tags": ["x"]}),  # 5, no copies
    ]:
        response = previous.request(method, path, owner="alice", json=body)
        assert response.status_code < 300, response.text

    # Rolled forward: right from the first request, then after the backfill, from the copies.
    _deploy(dynamodb)
    assert _ids(client.get("/items", params={"tag": "x"}, headers=alice)) == [4, 5]
    assert _ids(client.get("/items", params={"tag": "y"}, headers=alice)) == [2]
    runs = _backfill_to_the_end(dynamodb)
    assert sum(run.repaired for run in runs) >= 6  # 3 stale copies deleted, 3 copies written
    assert _ids(client.get("/items", params={"tag": "x"}, headers=alice)) == [4, 5]
    assert _ids(client.get("/items", params={"tag": "y"}, headers=alice)) == [2]
    assert _tag_partitions(dynamodb) == _expected_copies(client, auth, ["alice"])


def test_a_key_the_previous_release_still_holds_is_in_progress_and_a_dead_one_is_taken_over(
    previous: PreviousRelease, older_table: Any, client: TestClient, auth: Auth
) -> None:
    from app.store.idempotency import IdempotencyStore

    previous.request("POST", "/items", owner="alice", json={"name": "seed", "price": 1})
    digest = IdempotencyStore.record_key("alice", "POST", "/items", "k-held")["pk"]["S"]
    import hashlib
    import time

    fingerprint = hashlib.sha256(b"\n" + b'{"name":"x","price":1}').hexdigest()
    record = {
        "pk": {"S": f"IDEMPOTENCY#{digest}"},
        "sk": {"N": "0"},
        "status": {"S": "IN_PROGRESS"},
        "fingerprint": {"S": fingerprint},
        "claim_token": {"S": "older"},
        "locked_until": {"N": str(int(time.time()) + 20)},
        "expires_at": {"N": str(int(time.time()) + 3600)},
    }
    older_table.put_item(TableName=TABLE_NAME, Item=record)  # a request of the previous release, running
    headers = {**auth("alice"), "Idempotency-Key": "k-held", "Content-Type": "application/json"}
    held = client.post("/items", content=b'{"name":"x","price":1}', headers=headers)
    assert held.status_code == 409
    assert 1 <= int(held.headers["retry-after"]) <= 20

    record["locked_until"] = {"N": str(int(time.time()) - 1)}  # its request died without an answer
    older_table.put_item(TableName=TABLE_NAME, Item=record)
    taken = client.post("/items", content=b'{"name":"x","price":1}', headers=headers)
    assert taken.status_code == 201


def test_the_pass_resumes_after_a_crash_and_never_runs_two_at_once(
    previous: PreviousRelease,
    older_table: Any,
    client: TestClient,
    auth: Auth,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for number in range(12):
        body = {"name": f"n{number}", "price": 1, "tags": [f"t{number % 3}"]}
        assert previous.request("POST", "/items", owner="alice", json=body).status_code == 201
    monkeypatch.setattr(backfill, "PAGE_ROWS", 4)
    reset(older_table, TABLE_NAME, 0.0)
    now = [float(GRACE_SECONDS)]

    def worker() -> Backfill:
        return Backfill(
            older_table, TABLE_NAME, units_per_second=10_000, clock=lambda: now[0], sleep=lambda _: None
        )

    # A run that fails on its eighth transaction (DynamoDB failed it for good, or the function died).
    transactions = [0]

    def crash(**_: Any) -> None:
        transactions[0] += 1
        if transactions[0] == 8:
            raise RuntimeError("injected crash")

    older_table.meta.events.register("before-call.dynamodb.TransactWriteItems", crash)
    try:
        with pytest.raises(RuntimeError, match="injected crash"):
            worker().run(30)
    finally:
        older_table.meta.events.unregister("before-call.dynamodb.TransactWriteItems", crash)
    saved = older_table.get_item(TableName=TABLE_NAME, Key=LAYOUT_KEY)["Item"]
    assert saved["state"]["S"] == "backfilling"
    assert int(saved["scanned"]["N"]) > 0  # the pages before the crash are recorded

    # The next run goes on from the saved page (not from the start), and while it runs,
    # a second run finds the lease taken.
    concurrent: list[str] = []
    resumed = worker().run(30, on_page=lambda _: concurrent.append(worker().run(30).state))
    assert resumed.state == "complete"
    assert concurrent[:-1] == ["busy"] * (len(concurrent) - 1)  # then the last page ended the pass
    assert concurrent[-1] == "complete"
    assert len(concurrent) > 1
    total = len(older_table.scan(TableName=TABLE_NAME)["Items"])
    assert resumed.scanned < total
    _new_containers()
    assert _tag_partitions(older_table) == _expected_copies(client, auth, ["alice"])
    # Idempotent: a new pass over a table in line writes nothing.
    reset(older_table, TABLE_NAME, 0.0)
    again = worker().run(30)
    assert (again.state, again.repaired) == ("complete", 0)


def test_the_pass_keeps_to_its_capacity_budget(previous: PreviousRelease, older_table: Any) -> None:
    for number in range(6):
        body = {"name": f"n{number}", "price": 1, "tags": ["a", "b"]}
        assert previous.request("POST", "/items", owner="alice", json=body).status_code == 201
    reset(older_table, TABLE_NAME, 0.0)
    now = [float(GRACE_SECONDS)]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backfill, "PAGE_ROWS", 2)
        progress = Backfill(
            older_table, TABLE_NAME, units_per_second=5, clock=lambda: now[0], sleep=sleep
        ).run(600)
    assert progress.state == "complete"
    assert progress.units > 10  # 6 transactions of 3 rows, and the scans
    # The pass took at least as long as its units allow: units / (units per second).
    assert now[0] - GRACE_SECONDS >= (progress.units - 5 * 2) / 5  # all but the last page were paced
    assert slept


def test_each_run_reports_its_progress_in_the_log_and_a_metric(
    older_table: Any,
    dynamodb_server: dynamodb_local.DynamoDBLocal,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from upgrade import handler

    monkeypatch.setenv("TABLE_NAME", TABLE_NAME)
    monkeypatch.setenv("DYNAMODB_ENDPOINT_URL", dynamodb_server.endpoint)
    reset(older_table, TABLE_NAME, 0.0)  # long past its grace period
    summary = handler.run(20)
    assert summary["state"] == "complete"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    logged = [line for line in lines if line.get("message") == "backfill run"]
    assert logged
    assert logged[-1]["state"] == "complete"
    metrics = [line for line in lines if "_aws" in line]
    assert metrics
    assert metrics[-1]["BackfillRowsScanned"] in (summary["scanned"], [summary["scanned"]])
    assert metrics[-1]["BackfillPending"] in (0, [0])  # this run finished the pass
    # Once complete, a run does nothing but say so (the stall alarm sees nothing pending).
    assert handler.run(20)["state"] == "complete"
    after = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [line["BackfillPending"] for line in after] in ([0], [[0]])
    assert "BackfillRowsScanned" not in after[0]


@pytest.fixture
def response_url() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for CloudFormation's presigned response URL, on 127.0.0.1: what was PUT to it."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            assert self.headers.get("Content-Type", "") == ""  # what the presigned URL was signed for
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/response", received
    finally:
        server.shutdown()
        server.server_close()


def _cloudformation_event(kind: str, url: str) -> dict[str, Any]:
    return {
        "RequestType": kind,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/items-api-dev/guid",
        "RequestId": f"request-{kind}",
        "LogicalResourceId": "LayoutUpgrade",
        "ResourceType": "Custom::LayoutUpgrade",
        "ResourceProperties": {"Layout": "2"},
        **({"PhysicalResourceId": f"{TABLE_NAME}-layout"} if kind != "Create" else {}),
    }


@pytest.mark.parametrize("kind", ["Create", "Update", "Delete"])
def test_each_deploy_or_rollback_restarts_the_pass_and_answers_cloudformation(
    kind: str,
    dynamodb: Any,
    dynamodb_server: dynamodb_local.DynamoDBLocal,
    response_url: tuple[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from upgrade import handler

    url, received = response_url
    monkeypatch.setenv("TABLE_NAME", TABLE_NAME)
    monkeypatch.setenv("DYNAMODB_ENDPOINT_URL", dynamodb_server.endpoint)
    assert dynamodb.get_item(TableName=TABLE_NAME, Key=LAYOUT_KEY)["Item"]["state"]["S"] == "complete"
    handler.handler(_cloudformation_event(kind, url), None)
    row = dynamodb.get_item(TableName=TABLE_NAME, Key=LAYOUT_KEY)["Item"]
    # The API reads the old way until a pass ends; a rollback (Delete) starts none.
    assert row["state"]["S"] == ("stale" if kind == "Delete" else "backfilling")
    assert received == [
        {
            "Status": "SUCCESS",
            "PhysicalResourceId": f"{TABLE_NAME}-layout",  # never changes: no replacement, no extra Delete
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/items-api-dev/guid",
            "RequestId": f"request-{kind}",
            "LogicalResourceId": "LayoutUpgrade",
        }
    ]


def test_a_table_no_deploy_has_reset_waits_for_the_deploy(older_table: Any) -> None:
    # The schedule is created with the stack and may fire before the new code is live: only
    # the custom resource (ordered after the API's alias) starts a pass.
    worker = Backfill(older_table, TABLE_NAME, units_per_second=1, clock=lambda: 4e9, sleep=lambda _: None)
    assert worker.run(30).state == "waiting"
    assert "Item" not in older_table.get_item(TableName=TABLE_NAME, Key=LAYOUT_KEY)


@pytest.mark.parametrize(("kind", "status"), [("Update", "FAILED"), ("Delete", "SUCCESS")])
def test_a_failed_reset_is_reported_to_cloudformation_not_left_waiting(
    kind: str,
    status: str,
    dynamodb_server: dynamodb_local.DynamoDBLocal,
    response_url: tuple[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    environment: None,
) -> None:
    from upgrade import handler

    url, received = response_url
    monkeypatch.setenv("TABLE_NAME", "no-such-table")
    monkeypatch.setenv("DYNAMODB_ENDPOINT_URL", dynamodb_server.endpoint)
    handler.handler(_cloudformation_event(kind, url), None)
    # A deploy fails with the reason; deleting a stack whose table is already gone succeeds.
    assert received[0]["Status"] == status
    assert status == "SUCCESS" or "no-such-table" in received[0]["Reason"]


LAYOUT_2 = "fd07dfb"  # tag copies, no count of each owner's items


@pytest.fixture(scope="module")
def layout_2(dynamodb_server: dynamodb_local.DynamoDBLocal) -> Iterator[PreviousRelease]:
    """The release before the items quota, serving the suite's tables."""
    from tests.conftest import IDEMPOTENCY_TABLE_NAME

    with PreviousRelease(
        LAYOUT_2,
        endpoint_url=dynamodb_server.endpoint,
        table_name=TABLE_NAME,
        extra_env={
            "IDEMPOTENCY_TABLE_NAME": IDEMPOTENCY_TABLE_NAME,
            "OWNER_READS_PER_SECOND": "0",
            "OWNER_WRITE_UNITS_PER_SECOND": "0",
            "OWNER_IDEMPOTENCY_KEYS_PER_HOUR": "0",
        },
    ) as release:
        yield release


def _live_items(dynamodb: Any, owner: str) -> int | None:
    from items_core.rows import COUNTER_SK, owner_pk

    key = {"pk": {"S": owner_pk(owner)}, "sk": {"N": str(COUNTER_SK)}}
    counter = dynamodb.get_item(TableName=TABLE_NAME, Key=key, ConsistentRead=True)["Item"]
    return int(counter["live_items"]["N"]) if "live_items" in counter else None


def test_a_deploy_over_layout_2_counts_every_owners_items_before_the_quota_applies(
    layout_2: PreviousRelease, dynamodb: Any, client: TestClient, auth: Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import dependencies
    from items_core.layout import COMPLETE, LayoutReader

    # The table as layout 2 left it: its layout row complete, items and copies without a count.
    dynamodb.put_item(
        TableName=TABLE_NAME,
        Item={**LAYOUT_KEY, "layout": {"N": "2"}, "state": {"S": COMPLETE}, "generation": {"S": "g2"}},
    )

    def old(method: str, path: str, owner: str = "alice", **kwargs: Any) -> None:
        response = layout_2.request(method, path, owner=owner, **kwargs)
        assert response.status_code < 300, (method, path, response.status_code, response.text)

    for number in range(1, 5):
        old("POST", "/items", json={"name": f"Old {number}", "price": number, "tags": ["sale"]})
    old("DELETE", "/items/4")
    old("POST", "/items", owner="bob", json={"name": "Bob's", "price": 5})
    assert _live_items(dynamodb, "alice") is None

    monkeypatch.setenv("OWNER_ITEMS_STORED", "3")
    dependencies.get_settings.cache_clear()
    _deploy(dynamodb)
    layout = LayoutReader(lambda: dynamodb, TABLE_NAME).current()
    assert (layout.copies_complete, layout.counts_complete) == (True, False)  # tag listings stay fast
    alice = auth("alice")
    # Alice stores 3 items, but nothing has counted them yet: her creates are not refused.
    assert client.post("/items", json={"name": "New", "price": 1}, headers=alice).status_code == 201
    assert _ids(client.get("/items", params={"tag": "sale"}, headers=alice)) == [1, 2, 3]

    runs = _backfill_to_the_end(dynamodb)
    assert sum(run.repaired for run in runs) == 2  # two counter rows written, nothing else
    assert (_live_items(dynamodb, "alice"), _live_items(dynamodb, "bob")) == (4, 1)
    refused = client.post("/items", json={"name": "Over", "price": 1}, headers=alice)
    assert refused.status_code == 403
    assert "OwnerItemsStored" in refused.json()["detail"]
    assert client.post("/items", json={"name": "Bob 2", "price": 1}, headers=auth("bob")).status_code == 201

    # Rolled back, the older code creates and deletes without counting; forward again, the
    # pass counts anew before the quota applies.
    _roll_back(dynamodb)
    old("DELETE", "/items/1")
    old("DELETE", "/items/2")
    old("POST", "/items", owner="bob", json={"name": "Bob 3", "price": 1})
    _deploy(dynamodb)
    _backfill_to_the_end(dynamodb)
    assert (_live_items(dynamodb, "alice"), _live_items(dynamodb, "bob")) == (2, 3)
    assert client.post("/items", json={"name": "Room", "price": 1}, headers=alice).status_code == 201
    assert client.post("/items", json={"name": "Over", "price": 1}, headers=alice).status_code == 403
    # After the rollback the copies were not trusted until the pass checked them.
    assert _ids(client.get("/items", params={"tag": "sale"}, headers=alice)) == [3]


def test_an_owner_who_creates_while_being_counted_is_counted_again(
    dynamodb: Any, client: TestClient, auth: Auth
) -> None:
    """A create lands between the pass's count and its write: the write is refused and the owner
    counted again, so the new item is not lost from the count."""
    for number in range(3):
        assert (
            client.post("/items", json={"name": f"N{number}", "price": 1}, headers=auth("alice")).status_code
            == 201
        )
    from items_core.rows import COUNTER_SK, owner_pk

    dynamodb.update_item(  # a count gone wrong (a rollback's creates), for the pass to correct
        TableName=TABLE_NAME,
        Key={"pk": {"S": owner_pk("alice")}, "sk": {"N": str(COUNTER_SK)}},
        UpdateExpression="SET live_items = :zero",
        ExpressionAttributeValues={":zero": {"N": "0"}},
    )
    _deploy(dynamodb)
    raced = []

    def create_first(params: dict[str, Any], **_: Any) -> None:
        if params.get("UpdateExpression") == "SET live_items = :count" and not raced:
            raced.append(client.post("/items", json={"name": "Racing", "price": 1}, headers=auth("alice")))

    dynamodb.meta.events.register("provide-client-params.dynamodb.UpdateItem", create_first)
    try:
        _backfill_to_the_end(dynamodb)
    finally:
        dynamodb.meta.events.unregister("provide-client-params.dynamodb.UpdateItem", create_first)
    assert [response.status_code for response in raced] == [201]
    assert _live_items(dynamodb, "alice") == 4
