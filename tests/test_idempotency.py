"""Idempotency-Key on POST, PUT, PATCH and DELETE."""

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.dependencies import get_dynamodb_client
from app.store import idempotency
from app.store.idempotency import IdempotencyStore
from tests.conftest import IDEMPOTENCY_TABLE_NAME, TABLE_NAME
from tests.faults import FaultInjector
from tests.test_failures import stored_items

Auth = Callable[[str], dict[str, str]]
BODY = {"name": "Widget", "price": 9.99}


def keyed(auth: Auth, owner: str, key: str, **extra: str) -> dict[str, str]:
    return {**auth(owner), "Idempotency-Key": key, **extra}


def records(dynamodb: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = dynamodb.scan(TableName=IDEMPOTENCY_TABLE_NAME)["Items"]  # test-side only
    return rows


def test_records_live_in_their_own_table_and_store_the_body_as_sent(
    client: TestClient, auth: Auth, dynamodb: Any
) -> None:
    created = client.post("/items", json=BODY, headers=keyed(auth, "alice", "own-table"))
    assert created.status_code == 201
    [record] = records(dynamodb)
    assert set(record) == {
        "pk",
        "status",
        "fingerprint",
        "claim_token",
        "locked_until",
        "expires_at",
        "response_status",
        "response_headers",
        "response_body",
    }
    assert record["response_status"] == {"N": "201"}
    assert record["response_body"] == {"S": created.text}  # the body itself, not base64 of it
    headers = dict(json.loads(record["response_headers"]["S"]))
    assert headers["location"] == created.headers["location"]
    assert headers["etag"] == created.headers["etag"]
    # The items table holds the item, its counter, its layout row and nothing of the key.
    items_rows = dynamodb.scan(TableName=TABLE_NAME)["Items"]  # test-side inspection only
    assert sorted(row["pk"]["S"] for row in items_rows) == ["LAYOUT", "OWNER#alice", "OWNER#alice"]
    assert len(created.content) < idempotency.MAX_RECORD_BYTES


def test_a_response_over_the_record_cap_is_sent_and_its_key_given_back(
    client: TestClient, auth: Auth, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "MAX_RECORD_BYTES", 100)
    first = client.post("/items", json=BODY, headers=keyed(auth, "alice", "big"))
    assert first.status_code == 201  # the change happened, and the client hears so
    assert records(dynamodb) == []  # nothing half-stored: the key was released
    again = client.post("/items", json=BODY, headers=keyed(auth, "alice", "big"))
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers
    assert again.json()["id"] == first.json()["id"] + 1


def test_a_body_that_is_not_utf8_is_stored_as_bytes(dynamodb: Any) -> None:
    store = IdempotencyStore(get_dynamodb_client(), IDEMPOTENCY_TABLE_NAME)
    record_key = store.record_key("alice", "POST", "/items", "binary")
    assert isinstance(store.claim(record_key, "f", "t", lock_seconds=5), idempotency.Claimed)
    body = b"\xff\x00 not text"
    store.complete(record_key, "t", idempotency.StoredResponse(200, [(b"x-a", b"1")], body))
    replay = store.claim(record_key, "f", "other", lock_seconds=5)
    assert isinstance(replay, idempotency.Replay)
    assert replay.response == idempotency.StoredResponse(200, [(b"x-a", b"1")], body)


def test_repeats_replay_the_first_response(client: TestClient, auth: Auth, dynamodb: Any) -> None:
    first = client.post("/items", json=BODY, headers=keyed(auth, "alice", "order-1"))
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    for _ in range(10):
        again = client.post("/items", json=BODY, headers=keyed(auth, "alice", "order-1"))
        assert again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["etag"] == first.headers["etag"]
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert len(stored_items(dynamodb)) == 1


def test_concurrent_repeats_create_one_item(
    local_app: FastAPI, auth: Auth, faults: FaultInjector, dynamodb: Any
) -> None:
    client = TestClient(local_app)  # each request on its own event loop thread
    with ThreadPoolExecutor(max_workers=5) as pool:
        responses = list(
            pool.map(lambda _: client.post("/items", json=BODY, headers=keyed(auth, "alice", "k")), range(5))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}
    for conflict in (r for r in responses if r.status_code == 409):
        assert int(conflict.headers["retry-after"]) >= 1
        assert conflict.json() == {"detail": "A request with this Idempotency-Key is still in progress"}
    assert len(stored_items(dynamodb)) == 1
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == 1


def test_same_key_different_body_is_422(client: TestClient, auth: Auth, dynamodb: Any) -> None:
    client.post("/items", json=BODY, headers=keyed(auth, "alice", "k"))
    response = client.post("/items", json={**BODY, "price": 1}, headers=keyed(auth, "alice", "k"))
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["header", "idempotency-key"]
    assert error["msg"] == "Idempotency-Key was already used with a different request (body or If-Match)"
    assert len(stored_items(dynamodb)) == 1


def test_keys_are_scoped_per_owner_method_and_path(client: TestClient, auth: Auth, dynamodb: Any) -> None:
    alice = client.post("/items", json=BODY, headers=keyed(auth, "alice", "shared"))
    bob = client.post("/items", json=BODY, headers=keyed(auth, "bob", "shared"))
    assert bob.status_code == 201
    assert "idempotent-replayed" not in bob.headers
    assert len(stored_items(dynamodb, "bob")) == 1
    # The same key on other routes of alice's is a different request.
    second = client.post("/items", json=BODY, headers=auth("alice")).json()
    one = client.patch(
        f"/items/{alice.json()['id']}", json={"quantity": 1}, headers=keyed(auth, "alice", "shared")
    )
    two = client.patch(f"/items/{second['id']}", json={"quantity": 1}, headers=keyed(auth, "alice", "shared"))
    assert (one.status_code, two.status_code) == (200, 200)
    assert "idempotent-replayed" not in two.headers


def test_put_patch_delete_honour_the_key(client: TestClient, auth: Auth) -> None:
    item = client.post("/items", json=BODY, headers=auth("alice")).json()
    path = f"/items/{item['id']}"
    for method, body, status in (
        ("PATCH", {"quantity": 3}, 200),
        ("PUT", {"name": "New", "price": 2}, 200),
        ("DELETE", None, 204),
    ):
        key = keyed(auth, "alice", f"{method}-1")
        first = client.request(method, path, json=body, headers=key)
        second = client.request(method, path, json=body, headers=key)
        assert (first.status_code, second.status_code) == (status, status), method
        assert second.headers["idempotent-replayed"] == "true"
        assert first.content == second.content
    # The replayed PATCH did not bump the version a second time: PUT saw version 2 -> 3.
    assert client.get(path, headers=auth("alice")).status_code == 404


def test_if_match_is_part_of_the_request(client: TestClient, auth: Auth) -> None:
    created = client.post("/items", json=BODY, headers=auth("alice"))
    path = f"/items/{created.json()['id']}"
    first = client.patch(
        path, json={"quantity": 1}, headers=keyed(auth, "alice", "k", **{"If-Match": created.headers["etag"]})
    )
    other = client.patch(
        path, json={"quantity": 1}, headers=keyed(auth, "alice", "k", **{"If-Match": '"1-7"'})
    )
    assert first.status_code == 200
    assert other.status_code == 422


@pytest.mark.parametrize("key", ["", '""', "x" * 256, "bad\x01key", "tab\there"])
def test_malformed_keys_are_422(client: TestClient, auth: Auth, key: str, dynamodb: Any) -> None:
    response = client.post("/items", json=BODY, headers=keyed(auth, "alice", key))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
    assert stored_items(dynamodb) == {}


def test_non_ascii_key_is_422(client: TestClient, auth: Auth) -> None:
    headers = [
        (b"authorization", auth("alice")["Authorization"].encode()),
        (b"idempotency-key", "clé".encode()),
    ]
    response = client.post("/items", json=BODY, headers=headers)  # type: ignore[arg-type]
    assert response.status_code == 422


def test_longest_valid_key_and_quoted_form(client: TestClient, auth: Auth) -> None:
    long_key = "k" * 255
    assert client.post("/items", json=BODY, headers=keyed(auth, "alice", long_key)).status_code == 201
    first = client.post("/items", json=BODY, headers=keyed(auth, "alice", '"sf-string"'))
    again = client.post("/items", json=BODY, headers=keyed(auth, "alice", '"sf-string"'))
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()


def test_unauthenticated_requests_leave_no_record(client: TestClient, dynamodb: Any) -> None:
    response = client.post("/items", json=BODY, headers={"Idempotency-Key": "k"})
    assert response.status_code == 401
    assert records(dynamodb) == []


def test_records_expire_after_24_hours(
    client: TestClient, auth: Auth, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = client.post("/items", json=BODY, headers=keyed(auth, "alice", "k"))
    [record] = records(dynamodb)
    expires = int(record["expires_at"]["N"])
    assert abs(expires - (time.time() + 24 * 3600)) < 60  # the TTL attribute
    # DynamoDB's TTL deletes lazily: an expired record still in the table is ignored.
    later = time.time() + 24 * 3600 + 5
    monkeypatch.setattr(idempotency, "now", lambda: later)
    again = client.post("/items", json=BODY, headers=keyed(auth, "alice", "k"))
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]


def test_in_progress_key_is_409_until_its_lock_lapses(client: TestClient, auth: Auth, dynamodb: Any) -> None:
    store = IdempotencyStore(get_dynamodb_client(), IDEMPOTENCY_TABLE_NAME)
    import hashlib

    body = json.dumps(BODY).encode()
    fingerprint = hashlib.sha256(b"\n" + body).hexdigest()
    record_key = store.record_key("alice", "POST", "/items", "busy")
    store.claim(record_key, fingerprint, "someone-else", lock_seconds=20)
    response = client.post(
        "/items", content=body, headers={**keyed(auth, "alice", "busy"), "content-type": "application/json"}
    )
    assert response.status_code == 409
    assert 1 <= int(response.headers["retry-after"]) <= 20
    # A lock that lapsed (its request died) is taken over by the same request.
    stale_key = store.record_key("alice", "POST", "/items", "stale")
    store.claim(stale_key, fingerprint, "crashed", lock_seconds=-5)
    response = client.post(
        "/items", content=body, headers={**keyed(auth, "alice", "stale"), "content-type": "application/json"}
    )
    assert response.status_code == 201


def test_server_errors_release_the_key(
    client: TestClient, auth: Auth, faults: FaultInjector, dynamodb: Any
) -> None:
    faults.decide = lambda operation: "throttle" if operation == "PutItem" else None
    failed = client.post("/items", json=BODY, headers=keyed(auth, "alice", "k"))
    assert failed.status_code == 503  # the claim itself (a PutItem) was throttled
    outcomes = iter([None, "throttle", "throttle", "throttle"])  # claim ok, item put throttled out
    faults.decide = lambda operation: next(outcomes, None) if operation == "PutItem" else None
    failed = client.post("/items", json=BODY, headers=keyed(auth, "alice", "k"))
    assert failed.status_code == 503
    faults.decide = lambda operation: None
    retried = client.post("/items", json=BODY, headers=keyed(auth, "alice", "k"))
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert len(stored_items(dynamodb)) == 1


def test_an_unexpected_dynamodb_error_is_a_500_that_gives_the_key_back(
    client: TestClient, auth: Auth, faults: FaultInjector, dynamodb: Any
) -> None:
    # An error the API has no deliberate answer for (here DynamoDB refusing the item's write) is
    # a 500 raised past the exception handlers; the claim must still be released, or every retry
    # would be 409 "in progress" until the claim's lock lapses.
    outcomes = iter([None, None, "error:ValidationException"])  # claim, counter, then the item's put
    faults.decide = lambda operation: next(outcomes, None)
    assert client.post("/items", json=BODY, headers=keyed(auth, "alice", "k")).status_code == 500
    faults.decide = lambda operation: None
    retried = client.post("/items", json=BODY, headers=keyed(auth, "alice", "k"))
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers


def test_client_errors_are_remembered(client: TestClient, auth: Auth) -> None:
    first = client.patch("/items/77", json={"quantity": 1}, headers=keyed(auth, "alice", "k"))
    again = client.patch("/items/77", json={"quantity": 1}, headers=keyed(auth, "alice", "k"))
    assert (first.status_code, again.status_code) == (404, 404)
    assert again.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize(
    ("method", "path", "refused", "corrected", "ran"),
    [
        ("POST", "/items", {"name": "x", "price": -1}, {"name": "x", "price": 1}, 201),
        ("PATCH", "/items/1", {"price": "free"}, {"price": 2}, 200),
        ("PUT", "/items/1", {"name": ""}, {"name": "y", "price": 3}, 200),
    ],
)
def test_a_request_refused_as_sent_does_not_take_the_key(
    client: TestClient, auth: Auth, method: str, path: str, refused: Any, corrected: Any, ran: int
) -> None:
    assert client.post("/items", json=BODY, headers=auth("alice")).status_code == 201
    first = client.request(method, path, json=refused, headers=keyed(auth, "alice", "k"))
    assert first.status_code == 422
    fixed = client.request(method, path, json=corrected, headers=keyed(auth, "alice", "k"))
    assert fixed.status_code == ran, fixed.text
    assert "idempotent-replayed" not in fixed.headers
    again = client.request(method, path, json=corrected, headers=keyed(auth, "alice", "k"))
    assert (again.status_code, again.headers["idempotent-replayed"]) == (ran, "true")


def test_a_422_the_release_before_kept_does_not_hold_the_key(client: TestClient, auth: Auth) -> None:
    store = IdempotencyStore(get_dynamodb_client(), IDEMPOTENCY_TABLE_NAME)
    record_key = store.record_key("alice", "POST", "/items", "kept-422")
    assert isinstance(
        store.claim(record_key, "fingerprint of a refused body", "earlier", 30), idempotency.Claimed
    )
    refused = idempotency.StoredResponse(422, [(b"content-type", b"application/json")], b'{"detail":[]}')
    store.complete(record_key, "earlier", refused)  # what the release before did with a 422

    fixed = client.post("/items", json=BODY, headers=keyed(auth, "alice", "kept-422"))
    assert fixed.status_code == 201
    assert "idempotent-replayed" not in fixed.headers
    again = client.post("/items", json=BODY, headers=keyed(auth, "alice", "kept-422"))
    assert (again.status_code, again.headers["idempotent-replayed"]) == (201, "true")


@pytest.mark.slow
def test_lost_replies_of_idempotency_writes(
    client: TestClient, auth: Auth, faults: FaultInjector, dynamodb: Any
) -> None:
    faults.at_rate(0.5, "lose_reply", seed=3)
    statuses = []
    for i in range(20):
        key = keyed(auth, "alice", f"k{i}")
        statuses += [
            client.post("/items", json={**BODY, "name": f"n{i}"}, headers=key).status_code for _ in range(2)
        ]
    assert set(statuses) <= {201, 503}, statuses
    faults.decide = lambda operation: None
    names = [row["name"]["S"] for row in stored_items(dynamodb).values()]
    assert len(names) == len(set(names))


def test_a_key_costs_at_most_two_extra_calls(client: TestClient, auth: Auth, calls: list[str]) -> None:
    client.post("/items", json=BODY, headers=auth("alice"))
    plain = list(calls)
    calls.clear()
    client.post("/items", json=BODY, headers=keyed(auth, "alice", "k"))
    assert len(calls) <= len(plain) + 2
    calls.clear()
    client.post("/items", json=BODY, headers=keyed(auth, "alice", "k"))
    assert len(calls) <= 1, calls  # a replay: one conditional write that fails and returns the record


def test_a_key_dynamodb_could_not_give_back_is_409_for_the_rest_of_its_lock(
    client: TestClient, auth: Auth, faults: FaultInjector, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DynamoDB went away after the claim: the write and the key's release both fail.
    client.post("/items", json=BODY, headers=auth("alice"))
    outcomes = iter(["ok"])
    faults.decide = lambda operation: None if next(outcomes, None) else "fail"
    failed = client.patch("/items/1", json={"quantity": 2}, headers=keyed(auth, "alice", "stuck"))
    assert failed.status_code == 503
    faults.decide = lambda operation: None
    claimed_at = time.time()
    held = client.patch("/items/1", json={"quantity": 2}, headers=keyed(auth, "alice", "stuck"))
    assert held.status_code == 409
    # Retry-After says how long the lock still holds (30 s outside Lambda), not a blind second.
    assert 25 <= int(held.headers["retry-after"]) <= 30
    monkeypatch.setattr(idempotency, "now", lambda: claimed_at + 31)
    retried = client.patch("/items/1", json={"quantity": 2}, headers=keyed(auth, "alice", "stuck"))
    assert (retried.status_code, retried.json()["quantity"]) == (200, 2)
