"""HTTP semantics (RFC 9110) as clients rely on them: canonical integers, 405 with every allowed
method, the method judged before any header, HEAD wherever GET, request ids on WebSocket refusals."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from tests.conftest import LambdaContext, http_api_event, lambda_handler, response_headers

Auth = Callable[[str], dict[str, str]]
WIDGET = {"name": "Widget", "price": 9.99, "tags": ["tools"]}


@pytest.fixture
def items(client: TestClient, auth: Auth) -> list[dict[str, Any]]:
    """Items 1 to 10 of alice, so that every wrong spelling of an id would find one."""
    made = [client.post("/items", json=WIDGET, headers=auth("alice")).json() for _ in range(10)]
    assert [item["id"] for item in made] == list(range(1, 11))
    return made


NOT_CANONICAL = [
    "01",
    "1_0",
    "1.0",
    "%201",
    "1%20",
    "+1",
    "-1",
    "1e1",
    "0x1",
    "\u0661",
    "10_",
    "00",
    "%2B1",
    "1,0",
]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_item_ids_are_canonical_decimal_only(
    client: TestClient, auth: Auth, items: list[dict[str, Any]], method: str
) -> None:
    for spelling in NOT_CANONICAL:
        response = client.request(method, f"/items/{spelling}", json=WIDGET, headers=auth("alice"))
        assert response.status_code == 422, (spelling, response.text)
        assert response.json()["detail"][0]["loc"] == ["path", "item_id"], spelling
    # Nothing was changed through a second spelling of an id.
    assert all(client.get(f"/items/{i['id']}", headers=auth("alice")).json() == i for i in items)


def test_limit_is_canonical_decimal_within_range(client: TestClient, auth: Auth) -> None:
    for spelling in ["01", "1_0", "1.0", "%201", "+5", "5.", "1e1", "\u0665", "0", "101"]:
        response = client.get(f"/items?limit={spelling}", headers=auth("alice"))
        assert response.status_code == 422, (spelling, response.text)
        assert response.json()["detail"][0]["loc"] == ["query", "limit"], spelling


def test_canonical_spellings_work(client: TestClient, auth: Auth, items: list[dict[str, Any]]) -> None:
    assert client.get("/items/10", headers=auth("alice")).json()["id"] == 10
    assert len(client.get("/items?limit=5", headers=auth("alice")).json()["items"]) == 5
    assert len(client.get("/items?limit=100", headers=auth("alice")).json()["items"]) == 10


ALLOWED = {
    "/health": "GET, HEAD, OPTIONS",
    "/items": "GET, HEAD, POST, OPTIONS",
    "/items/3": "GET, HEAD, PUT, PATCH, DELETE, OPTIONS",
    "/openapi.json": "GET, HEAD, OPTIONS",
}
WRONG = [
    ("PUT", "/items"),
    ("PATCH", "/items"),
    ("DELETE", "/items"),
    ("POST", "/items/3"),
    ("POST", "/health"),
    ("DELETE", "/health"),
    ("POST", "/openapi.json"),
]


@pytest.mark.parametrize(("method", "path"), WRONG)
def test_405_allows_every_method_of_the_path(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == ALLOWED[path]
    assert response.json() == {"detail": "Method Not Allowed"}


@pytest.mark.parametrize(("method", "path"), WRONG)
def test_405_through_the_lambda_handler(app: Any, method: str, path: str) -> None:
    response = lambda_handler()(http_api_event(method, path, owner="alice"), None)
    assert response["statusCode"] == 405
    assert response_headers(response)["allow"] == ALLOWED[path]


@pytest.mark.parametrize(("method", "path"), [*WRONG, ("POST", "/items/3/extra"), ("PUT", "/itemz/3")])
@pytest.mark.parametrize(
    "key", ["", "é".encode(), "x" * 300, "ok-key"], ids=["empty", "non-ascii", "long", "valid"]
)
def test_the_method_and_path_are_judged_before_the_idempotency_key(
    client: TestClient, auth: Auth, method: str, path: str, key: str | bytes
) -> None:
    response = client.request(method, path, json=WIDGET, headers={**auth("alice"), "Idempotency-Key": key})
    expected = 405 if path in ALLOWED else 404
    assert response.status_code == expected, response.text


def test_a_valid_route_still_judges_the_key(client: TestClient, auth: Auth) -> None:
    response = client.post("/items", json=WIDGET, headers={**auth("alice"), "Idempotency-Key": ""})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "idempotency-key"]


@pytest.mark.parametrize("path", sorted(ALLOWED))
def test_options_says_what_the_path_allows_without_a_token(client: TestClient, path: str) -> None:
    # Also what a browser's CORS preflight gets through the path's unauthorized ANY route.
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"}
    response = client.options(path, headers=preflight)
    assert response.status_code == 204
    assert response.headers["allow"] == ALLOWED[path]
    assert response.content == b""


def test_options_through_the_lambda_handler(app: Any) -> None:
    response = lambda_handler()(http_api_event("OPTIONS", "/items/3"), None)
    assert response["statusCode"] == 204
    assert response_headers(response)["allow"] == ALLOWED["/items/3"]


@pytest.mark.parametrize("path", ["/health", "/items", "/items/1", "/openapi.json", "/docs", "/redoc"])
def test_head_answers_wherever_get_does(client: TestClient, auth: Auth, path: str) -> None:
    client.post("/items", json=WIDGET, headers=auth("alice"))
    get = client.get(path, headers=auth("alice"))
    head = client.head(path, headers=auth("alice"))
    assert get.status_code == 200
    assert head.status_code == 200
    assert head.content == b""
    for header in ("content-type", "content-length", "etag", "cache-control", "x-content-type-options"):
        assert head.headers.get(header) == get.headers.get(header), header
    assert head.headers["x-request-id"]


def test_head_keeps_get_semantics(client: TestClient, auth: Auth) -> None:
    assert client.head("/items/1", headers=auth("alice")).status_code == 404
    assert client.head("/items").status_code == 401
    assert client.head("/nowhere").status_code == 404
    item = client.post("/items", json=WIDGET, headers=auth("alice")).json()
    etag = client.get(f"/items/{item['id']}", headers=auth("alice")).headers["etag"]
    cached = client.head(f"/items/{item['id']}", headers={**auth("alice"), "If-None-Match": etag})
    assert cached.status_code == 304


def test_head_through_the_lambda_handler(app: Any) -> None:
    response = lambda_handler()(http_api_event("HEAD", "/health"), None)
    assert response["statusCode"] == 200
    assert not response.get("body")
    assert response_headers(response)["content-type"] == "application/json"


def test_websocket_refusal_carries_a_request_id(local_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from app import settings

    monkeypatch.setenv("LOCAL_REALTIME", "true")
    settings.get_settings.cache_clear()
    with (
        TestClient(local_app) as test_client,
        pytest.raises(WebSocketDenialResponse) as refused,
        test_client.websocket_connect("/ws?token=not-a-token"),
    ):
        pass  # pragma: no cover
    assert refused.value.status_code == 401
    assert len(refused.value.headers["x-request-id"]) == 32
    assert refused.value.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/nope", "/ws/x", "/items", "/health"])
def test_a_websocket_upgrade_where_none_is_served_is_a_json_404(local_app: Any, path: str) -> None:
    """Like any unknown path (not the server's bare 403), with the request id and security headers."""
    with (
        TestClient(local_app) as test_client,
        pytest.raises(WebSocketDenialResponse) as refused,
        test_client.websocket_connect(path),
    ):
        pass  # pragma: no cover
    assert (refused.value.status_code, refused.value.json()) == (404, {"detail": "Not Found"})
    assert len(refused.value.headers["x-request-id"]) == 32
    assert refused.value.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    ("path", "owner", "status", "route"),
    [
        ("/items/999", "alice", 404, "/items/{item_id}"),
        ("/items", None, 401, "/items"),
        ("/nowhere", None, 404, None),
    ],
)
def test_head_errors_carry_no_body_and_are_logged_as_head(
    app: Any, path: str, owner: str | None, status: int, route: str | None
) -> None:
    import io

    from app import observability

    lines = io.StringIO()
    observability.LOG_STREAM.target = lines
    try:
        response = lambda_handler()(http_api_event("HEAD", path, owner=owner), LambdaContext())
    finally:
        observability.LOG_STREAM.target = None
    assert response["statusCode"] == status
    assert not response.get("body")
    [logged] = [json.loads(line) for line in lines.getvalue().splitlines() if '"message":"request"' in line]
    assert (logged["method"], logged["route"], logged["status"]) == ("HEAD", route or "unmatched", status)


@pytest.mark.parametrize(("fault", "status"), [("throttle", 503), (RuntimeError("boom"), 500)])
def test_head_failures_carry_no_body_and_name_head(app: Any, faults: Any, fault: Any, status: int) -> None:
    import io

    from app import observability
    from app.dependencies import get_dynamodb_client

    if isinstance(fault, str):
        faults.decide = lambda operation: fault
    else:

        def explode(**_: Any) -> None:
            raise fault

        get_dynamodb_client().meta.events.register("before-call.dynamodb.GetItem", explode)
    lines = io.StringIO()
    observability.LOG_STREAM.target = lines
    try:
        response = lambda_handler()(http_api_event("HEAD", "/items/1", owner="alice"), LambdaContext())
    finally:
        observability.LOG_STREAM.target = None
    assert response["statusCode"] == status
    assert not response.get("body")
    logged = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert [line["method"] for line in logged if line["message"] == "request"] == ["HEAD"]
    assert all("GET" not in line["message"] for line in logged)
