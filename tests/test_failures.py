"""DynamoDB failures: throttling, timeouts, lost replies and races end in 2xx or 503, never a 500 or a lie."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.dependencies import get_dynamodb_client
from app.settings import (
    LAYOUT_READ_MAX_ATTEMPTS,
    MAX_AWS_CALLS_PER_REQUEST,
    SINGLE_ATTEMPT_CALLS_PER_REQUEST,
    Settings,
    get_settings,
)
from devtools.template import load_template
from items_core.aws_clients import worst_case_call_seconds
from items_core.environment import from_environment
from tests.conftest import TABLE_NAME
from tests.faults import FaultInjector

Auth = Callable[[str], dict[str, str]]


def stored_items(dynamodb: Any, owner: str = "alice") -> dict[int, dict[str, Any]]:
    """The owner's live items as DynamoDB holds them (a test-side Query, around the app)."""
    response = dynamodb.query(
        TableName=TABLE_NAME,
        KeyConditionExpression="pk = :pk AND sk > :zero",
        ExpressionAttributeValues={":pk": {"S": f"OWNER#{owner}"}, ":zero": {"N": "0"}},
        ConsistentRead=True,
    )
    return {int(row["sk"]["N"]): row for row in response["Items"] if "name" in row}


# --- the retry budget ---------------------------------------------------------------------


def test_the_templates_retry_budget_is_the_apps(monkeypatch: pytest.MonkeyPatch) -> None:
    # The gate (cfn-lint rule E9005) checks the function's timeout covers its RetryBudget;
    # this checks the budget is the one the code runs with.
    for name in ("DYNAMODB_MAX_ATTEMPTS", "DYNAMODB_CONNECT_TIMEOUT", "DYNAMODB_READ_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)  # the defaults, as deployed
    monkeypatch.setenv("TABLE_NAME", "t-x")
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", "t-y")
    settings = from_environment(Settings)
    budget = load_template()["Resources"]["ApiFunction"]["Metadata"]["RetryBudget"]
    assert budget == {
        "Calls": [
            {
                "Count": MAX_AWS_CALLS_PER_REQUEST,
                "MaxAttempts": settings.dynamodb_max_attempts,
                "ConnectTimeout": settings.dynamodb_connect_timeout,
                "ReadTimeout": settings.dynamodb_read_timeout,
            },
            {
                "Count": SINGLE_ATTEMPT_CALLS_PER_REQUEST,
                "MaxAttempts": LAYOUT_READ_MAX_ATTEMPTS,
                "ConnectTimeout": settings.dynamodb_connect_timeout,
                "ReadTimeout": settings.dynamodb_read_timeout,
            },
        ],
        "AppSeconds": 1,
    }


def test_the_worst_case_follows_botocores_own_backoff() -> None:
    from botocore.retries.standard import ExponentialBackoff, RetryContext

    class Throttled:  # the longest backoff is a throttle's
        @staticmethod
        def is_throttling_error_from_context(context: Any) -> bool:
            return True

    # How botocore's standard retries are built for a client, with every sleep at its longest.
    longest = ExponentialBackoff(random=lambda: 1.0, service_name="dynamodb", throttling_detector=Throttled())
    for attempts in (1, 2, 3, 8):
        sleeps = sum(longest.delay_amount(RetryContext(attempt_number=n)) for n in range(1, attempts))
        assert worst_case_call_seconds(attempts, 0.5, 0.5) == attempts * 1.0 + sleeps


def test_client_uses_standard_retries_and_explicit_timeouts(
    environment: None, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DYNAMODB_CONNECT_TIMEOUT")  # the defaults, as deployed
    monkeypatch.delenv("DYNAMODB_READ_TIMEOUT")
    get_settings.cache_clear()
    get_dynamodb_client.cache_clear()
    config = get_dynamodb_client().meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}  # attempts, not retries
    assert (config.connect_timeout, config.read_timeout) == (0.5, 0.5)


def test_parameter_validation_is_on_in_tests_and_make_run_and_off_in_lambda(
    environment: None, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ParamValidationError

    from devtools.local_env import local_environment

    # The suite checks every call against botocore's model...
    client = get_dynamodb_client()
    assert client.meta.config.parameter_validation is True
    with pytest.raises(ParamValidationError):
        client.get_item(TableName="t-x", Key={"pk": {"S": 1}})  # a malformed call fails before it is sent
    assert local_environment("http://127.0.0.1:1")["AWS_VALIDATE_PARAMS"] == "true"
    # ...and the deployed function, whose calls the suite has checked, skips the check.
    monkeypatch.delenv("AWS_VALIDATE_PARAMS")
    assert Settings(table_name="t-x", idempotency_table_name="t-y").aws_validate_params is False
    variables = load_template()["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert "AWS_VALIDATE_PARAMS" not in variables


# --- throttling and timeouts --------------------------------------------------------------


@pytest.mark.parametrize("fault", ["throttle", "timeout", "fail"])
def test_exhausted_retries_are_503_with_retry_after(
    client: TestClient, auth: Auth, faults: FaultInjector, fault: str
) -> None:
    faults.at_rate(1.0, fault, operations=frozenset({"GetItem"}))
    response = client.get("/items/1", headers=auth("alice"))
    assert response.status_code == 503
    assert response.json() == {"detail": "Service Unavailable"}
    assert response.headers["retry-after"] == "1"
    assert faults.counts[fault] == 3  # every attempt was made


def test_a_throttle_that_clears_is_invisible(client: TestClient, auth: Auth, faults: FaultInjector) -> None:
    outcomes = iter(["throttle", "throttle"])
    faults.decide = lambda operation: next(outcomes, None)
    response = client.post("/items", json={"name": "n", "price": 1}, headers=auth("alice"))
    assert response.status_code == 201


@pytest.mark.slow
def test_thirty_percent_throttling_stores_exactly_what_was_acknowledged(
    client: TestClient, auth: Auth, faults: FaultInjector, dynamodb: Any
) -> None:
    headers = auth("alice")
    faults.at_rate(0.3, "throttle", operations=frozenset({"PutItem", "UpdateItem", "GetItem", "Query"}))
    acknowledged: dict[int, dict[str, Any]] = {}
    statuses: list[int] = []
    for i in range(60):
        response = client.post("/items", json={"name": f"item {i}", "price": i}, headers=headers)
        statuses.append(response.status_code)
        if response.status_code == 201:
            acknowledged[response.json()["id"]] = response.json()
    for item_id in list(acknowledged):
        response = client.patch(f"/items/{item_id}", json={"quantity": item_id}, headers=headers)
        statuses.append(response.status_code)
        if response.status_code == 200:
            acknowledged[item_id] = response.json()
    for item_id in list(acknowledged)[::3]:
        response = client.delete(f"/items/{item_id}", headers=headers)
        statuses.append(response.status_code)
        if response.status_code == 204:
            del acknowledged[item_id]
    assert set(statuses) <= {200, 201, 204, 503}
    assert 503 in statuses  # the injection really bit
    assert faults.counts["throttle"] > 0
    faults.decide = lambda operation: None
    stored = stored_items(dynamodb)
    assert set(stored) == set(acknowledged)
    for item_id, item in acknowledged.items():
        assert int(stored[item_id]["version"]["N"]) == item["version"]
        assert int(stored[item_id]["quantity"]["N"]) == item["quantity"]


@pytest.mark.slow
def test_thirty_percent_lost_replies_cause_no_duplicates_or_false_conflicts(
    client: TestClient, auth: Auth, faults: FaultInjector, dynamodb: Any
) -> None:
    headers = auth("alice")
    faults.at_rate(0.3, "lose_reply")
    statuses: list[int] = []
    created: dict[int, str] = {}
    for i in range(40):
        response = client.post("/items", json={"name": f"unique {i}", "price": 1}, headers=headers)
        statuses.append(response.status_code)
        if response.status_code == 201:
            created[response.json()["id"]] = response.json()["name"]
    patches = 0
    for item_id in created:
        current = client.get(f"/items/{item_id}", headers=headers)
        response = client.patch(
            f"/items/{item_id}",
            json={"quantity": 5},
            headers={**headers, "If-Match": current.headers["etag"]},
        )
        statuses.append(response.status_code)
        if response.status_code == 200:
            patches += 1
            assert response.json()["version"] == current.json()["version"] + 1  # bumped once, not twice
    deleted = [item_id for item_id in created if item_id % 2]
    for item_id in deleted:
        response = client.delete(f"/items/{item_id}", headers=headers)
        statuses.append(response.status_code)
    assert set(statuses) <= {200, 201, 204, 503}, statuses  # no false 404/409/412
    assert faults.counts["lose_reply"] > 10
    faults.decide = lambda operation: None
    stored = stored_items(dynamodb)
    names = [row["name"]["S"] for row in stored.values()]
    assert len(names) == len(set(names))  # no item created twice
    ids = sorted(created)
    assert len(ids) == len(set(ids))
    # Every acknowledged item is there unless it was deleted.
    assert {i for i in created if i not in deleted} <= set(stored)
    assert patches > 0


def test_lost_reply_of_a_create_reuses_no_id(
    client: TestClient, auth: Auth, faults: FaultInjector, dynamodb: Any
) -> None:
    headers = auth("alice")
    faults.decide = lambda operation: "lose_reply" if operation == "UpdateItem" else None
    first = client.post("/items", json={"name": "a", "price": 1}, headers=headers)
    faults.decide = lambda operation: None
    second = client.post("/items", json={"name": "b", "price": 1}, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json()["id"] == first.json()["id"] + 1  # the retried counter bump counted once


# --- races --------------------------------------------------------------------------------


@pytest.mark.slow
def test_concurrent_patches_with_the_same_if_match_have_one_winner(
    local_app: FastAPI, auth: Auth, faults: FaultInjector
) -> None:
    headers = auth("alice")
    client = TestClient(local_app)  # no context manager: each request runs on its own event loop thread
    item = client.post("/items", json={"name": "race", "price": 1}, headers=headers).json()
    path = f"/items/{item['id']}"
    with ThreadPoolExecutor(max_workers=16) as pool:
        for round_number in range(30):
            current = client.get(path, headers=headers)
            etag, version = current.headers["etag"], current.json()["version"]

            def patch(n: int, etag: str = etag) -> Any:
                return client.patch(path, json={"quantity": n}, headers={**headers, "If-Match": etag})

            responses = list(pool.map(patch, range(16)))
            winners = [r for r in responses if r.status_code == 200]
            assert sorted(r.status_code for r in responses) == [200] + [412] * 15, round_number
            assert all(
                r.json() == {"detail": "Precondition Failed"} for r in responses if r.status_code == 412
            )
            after = client.get(path, headers=headers).json()
            assert after["version"] == version + 1
            assert after["quantity"] == winners[0].json()["quantity"]

        start = client.get(path, headers=headers).json()["version"]
        responses = list(
            pool.map(lambda n: client.patch(path, json={"quantity": n}, headers=headers), range(16))
        )
        assert [r.status_code for r in responses] == [200] * 16
        assert sorted(r.json()["version"] for r in responses) == list(range(start + 1, start + 17))
        assert client.get(path, headers=headers).json()["version"] == start + 16
