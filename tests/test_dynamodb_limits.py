"""Every DynamoDB limit a client can reach is a clear 4xx first, or is shown out of reach, on DynamoDB Local.

docs/contract.md ("DynamoDB's limits and the API") lists each limit with the input
that could reach it; each row is driven here against DynamoDB Local, which
enforces DynamoDB's limits (moto does not: see docs/design.md).
"""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.dependencies import get_dynamodb_client
from app.preconditions import MAX_IF_MATCH_VERSIONS
from items_core.models import MAX_TAGS
from items_core.rows import MAX_OWNER_BYTES
from realtime import websocket
from tests.conftest import LambdaContext, http_api_event, lambda_handler, response_json
from tests.realtime_fixtures import Issuer, connection_rows, ws_event

Auth = Callable[[str], dict[str, str]]
Handler = Callable[[dict[str, Any]], dict[str, Any]]
# The largest item the models allow, in the characters DynamoDB counts as 4 bytes each.
WIDE = "\N{GRINNING FACE}"
MAXIMAL = {
    "name": WIDE * 200,
    "description": WIDE * 2000,
    "price": 999_999_999.99,
    "quantity": 1_000_000_000,
    "tags": [f"{i:02d}" + WIDE * 48 for i in range(MAX_TAGS)],
}


@pytest.fixture
def handler(app: FastAPI) -> Handler:
    handle = lambda_handler()
    return lambda event: handle(event, LambdaContext())


# --- If-Match: at most 100 operands of IN ----------------------------------------------------------


def _if_match(versions: range, item_id: int = 1) -> str:
    return ", ".join(f'"{item_id}-{version}"' for version in versions)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_if_match_with_more_versions_than_a_condition_holds_is_422_naming_it(
    client: TestClient, auth: Auth, method: str
) -> None:
    headers = auth("alice")
    client.post("/items", json={"name": "n", "price": 1}, headers=headers)
    body = {"name": "n", "price": 2} if method != "DELETE" else None
    too_many = {**headers, "If-Match": _if_match(range(2, MAX_IF_MATCH_VERSIONS + 3))}
    response = client.request(method, "/items/1", json=body, headers=too_many)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["header", "if-match"]
    assert error["msg"] == "If-Match names 101 versions of this item; at most 100"
    # 100 versions (the current one last), duplicates and other items' tags are what DynamoDB accepts.
    listed = _if_match(range(2, MAX_IF_MATCH_VERSIONS + 1)) + ', "1-1", "1-1", ' + _if_match(range(1, 60), 2)
    accepted = client.request(method, "/items/1", json=body, headers={**headers, "If-Match": listed})
    assert accepted.status_code in {200, 204}, accepted.text
    assert client.get("/items/1", headers=headers).status_code == (200 if method != "DELETE" else 404)


def test_the_longest_expressions_stay_far_below_4_kb(client: TestClient, auth: Auth) -> None:
    lengths: list[int] = []

    def measure(params: dict[str, Any], **_: Any) -> None:
        actions = [next(iter(action.values())) for action in params.get("TransactItems", [])] or [params]
        for action in actions:
            lengths.extend(len(action.get(name, "")) for name in ("UpdateExpression", "ConditionExpression"))

    get_dynamodb_client().meta.events.register("provide-client-params.dynamodb", measure)
    headers = auth("alice")
    every_field = {"name": "n", "description": "d", "price": 1, "quantity": 1, "tags": []}
    client.post("/items", json=every_field, headers=headers)
    stale = {**headers, "If-Match": _if_match(range(2, MAX_IF_MATCH_VERSIONS + 2))}
    assert (
        client.patch("/items/1", json={**every_field, "description": None}, headers=stale).status_code == 412
    )
    current = {**headers, "If-Match": _if_match(range(1, MAX_IF_MATCH_VERSIONS + 1))}
    assert (
        client.patch("/items/1", json={**every_field, "description": None}, headers=current).status_code
        == 200
    )
    assert (
        client.delete("/items/1", headers={**headers, "If-Match": _if_match(range(2, 102))}).status_code
        == 204
    )
    assert 0 < max(lengths) < 1024


# --- the owner in every partition key: at most 2,048 bytes ---------------------------------------

ROUTES = [
    ("POST", "/items", "", {"name": "n", "price": 1, "tags": ["t"]}),
    ("GET", "/items/1", "", None),
    ("GET", "/items", "", None),
    ("GET", "/items", "tag=t", None),
    ("GET", "/items", "q=n", None),
    ("PUT", "/items/1", "", {"name": "m", "price": 2, "tags": ["u"]}),
    ("PATCH", "/items/1", "", {"quantity": 2}),
    ("DELETE", "/items/1", "", None),
]


def test_an_owner_of_the_longest_storable_id_uses_every_route(handler: Handler) -> None:
    owner = "\N{EURO SIGN}" * (MAX_OWNER_BYTES // 3) + "a" * (MAX_OWNER_BYTES % 3)  # exactly 1,024 bytes
    statuses = [
        handler(http_api_event(method, path, owner=owner, body=body, query=query))["statusCode"]
        for method, path, query, body in ROUTES
    ]
    assert statuses == [201, 200, 200, 200, 200, 200, 200, 204]


@pytest.mark.parametrize(
    ("owner", "problem"),
    [
        ("a" * (MAX_OWNER_BYTES + 1), "is 1025 bytes long; at most 1024 bytes (UTF-8) can be stored"),
        ("s" * 2100, "is 2100 bytes long; at most 1024 bytes (UTF-8) can be stored"),
        ("\N{EURO SIGN}" * 342, "is 1026 bytes long; at most 1024 bytes (UTF-8) can be stored"),
        ("al\ud800ice", "is not valid Unicode text (it contains a lone surrogate)"),
    ],
)
def test_an_owner_id_too_long_for_a_key_is_403_on_every_route_naming_the_claim(
    handler: Handler, owner: str, problem: str
) -> None:
    for method, path, query, body in ROUTES:
        response = handler(http_api_event(method, path, owner=owner, body=body, query=query))
        assert response["statusCode"] == 403, (method, path, query)
        assert response_json(response) == {"detail": f"The token's owner claim (sub) {problem}"}


def test_make_runs_tokens_obey_the_same_owner_limit(client: TestClient, auth: Auth) -> None:
    long_owner = auth("o" * (MAX_OWNER_BYTES + 1))
    assert client.get("/items", headers=long_owner).status_code == 403
    keyed = {**long_owner, "Idempotency-Key": "k"}
    assert client.post("/items", json={"name": "n", "price": 1}, headers=keyed).status_code == 403


def test_the_websocket_connect_refuses_an_owner_id_too_long_for_a_key(realtime: Any, issuer: Issuer) -> None:
    token = issuer.token("w" * (MAX_OWNER_BYTES + 1))
    response = websocket.handler(ws_event("$connect", "c1", token=token), LambdaContext())
    assert response["statusCode"] == 403
    assert (
        response["body"]
        == "The token's owner claim (sub) is 1025 bytes long; at most 1024 bytes (UTF-8) can be stored"
    )
    assert connection_rows(realtime) == []


# --- items at the models' limits: 400 KB per item, 100 actions and 4 MB per transaction, 1 MB per Query --


def test_the_largest_item_with_the_most_tags_takes_every_write(client: TestClient, auth: Auth) -> None:
    headers = auth("alice")
    created = client.post("/items", json=MAXIMAL, headers=headers)
    assert created.status_code == 201, created.text
    # Replacing every tag with others: 1 + 20 puts + 20 deletes in one transaction.
    others = {**MAXIMAL, "tags": [f"{i:02d}" + WIDE * 48 for i in range(50, 50 + MAX_TAGS)]}
    replaced = client.put("/items/1", json=others, headers={**headers, "Idempotency-Key": "big"})
    assert replaced.status_code == 200, replaced.text
    replayed = client.put("/items/1", json=others, headers={**headers, "Idempotency-Key": "big"})
    assert (replayed.headers["idempotent-replayed"], replayed.json()) == ("true", replaced.json())
    assert client.patch("/items/1", json={"quantity": 1}, headers=headers).status_code == 200
    tag_page = client.get("/items", params={"tag": others["tags"][-1]}, headers=headers).json()
    assert [item["version"] for item in tag_page["items"]] == [3]
    assert client.delete("/items/1", headers=headers).status_code == 204  # 1 + tombstone + 20 copies


@pytest.mark.slow
def test_a_page_of_100_of_the_largest_items_is_full_past_dynamodbs_1_mb_per_query(
    client: TestClient, auth: Auth, calls: list[str]
) -> None:
    headers = auth("alice")
    for _ in range(101):
        assert client.post("/items", json=MAXIMAL, headers=headers).status_code == 201
    for params in ({"limit": 100}, {"limit": 100, "tag": MAXIMAL["tags"][0]}):
        calls.clear()
        first = client.get("/items", params=params, headers=headers)
        assert first.status_code == 200
        assert len(calls) <= 2, calls  # DynamoDB stops a Query at 1 MB: the page needs a second
        page = first.json()
        assert [item["id"] for item in page["items"]] == list(range(1, 101))
        assert 1_000_000 < len(first.content) < 1_700_000  # Lambda's response limit is 6 MB
        rest = client.get("/items", params={**params, "cursor": page["next_cursor"]}, headers=headers).json()
        assert ([item["id"] for item in rest["items"]], rest["next_cursor"]) == ([101], None)
