"""The Items API contract, row by row, through FastAPI's TestClient (the local app, dev tokens)."""

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

Auth = Callable[[str], dict[str, str]]
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
WIDGET = {"name": "Widget", "price": 9.99, "tags": ["tools"]}


def create(client: TestClient, auth: Auth, owner: str = "alice", **fields: Any) -> dict[str, Any]:
    response = client.post("/items", json={**WIDGET, **fields}, headers=auth(owner))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# --- health, docs, unknown routes -------------------------------------------------


def test_health_is_public(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_docs_and_openapi_are_public(client: TestClient) -> None:
    assert "swagger-ui" in client.get("/docs").text
    assert "redoc" in client.get("/redoc").text.lower()
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "An OAuth access token (JWT) from the configured issuer with the API's scope "
            "(default items-api/items); ID tokens are refused."
        ),
    }
    assert {"post", "get"} <= set(schema["paths"]["/items"])
    assert {"get", "put", "patch", "delete"} <= set(schema["paths"]["/items/{item_id}"])
    price = schema["components"]["schemas"]["ItemCreate"]["properties"]["price"]
    assert price["type"] == "number"  # documented as a JSON number, never a string


def test_unknown_path_is_json_404(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_trailing_slash_is_not_redirected(client: TestClient, auth: Auth) -> None:
    assert client.get("/items/", headers=auth("alice")).status_code == 404


def test_wrong_method_is_json_405(client: TestClient, auth: Auth) -> None:
    response = client.put("/items", json=WIDGET, headers=auth("alice"))
    assert response.status_code == 405
    assert response.json() == {"detail": "Method Not Allowed"}


# --- create ------------------------------------------------------------------------


def test_create_returns_the_item_with_location(client: TestClient, auth: Auth) -> None:
    response = client.post(
        "/items", json={"name": "Widget", "price": 9.99, "tags": ["tools"]}, headers=auth("alice")
    )
    assert response.status_code == 201
    item = response.json()
    assert response.headers["location"] == f"/items/{item['id']}"
    assert set(item) == {
        "id",
        "name",
        "description",
        "price",
        "quantity",
        "tags",
        "version",
        "created_at",
        "updated_at",
        "etag",
    }
    assert item["etag"] == response.headers["etag"] == f'"{item["id"]}-1"'
    assert item["id"] >= 1
    assert item["name"] == "Widget"
    assert item["description"] is None
    assert item["price"] == 9.99
    assert item["quantity"] == 0
    assert item["tags"] == ["tools"]
    assert item["version"] == 1
    assert RFC3339_UTC.match(item["created_at"])
    assert item["created_at"] == item["updated_at"]
    assert client.get(response.headers["location"], headers=auth("alice")).json() == item


def test_ids_increase_per_owner_and_are_independent(client: TestClient, auth: Auth) -> None:
    alice = [create(client, auth, "alice")["id"] for _ in range(3)]
    bob = [create(client, auth, "bob")["id"] for _ in range(2)]
    assert alice == sorted(alice)
    assert len(set(alice)) == 3
    assert bob[0] >= 1
    assert bob == sorted(bob)


def test_deleted_ids_are_never_reused(client: TestClient, auth: Auth) -> None:
    first = create(client, auth)["id"]
    second = create(client, auth)["id"]
    assert client.delete(f"/items/{second}", headers=auth("alice")).status_code == 204
    third = create(client, auth)["id"]
    assert third > second > first


def test_price_is_stored_exactly(client: TestClient, auth: Auth, stored: Any) -> None:
    for text, expected in [("0.1", "0.1"), ("999999999.99", "999999999.99"), ("0.07", "0.07"), ("10", "10")]:
        response = client.post(
            "/items",
            content=f'{{"name": "n", "price": {text}}}',
            headers={**auth("alice"), "content-type": "application/json"},
        )
        assert response.status_code == 201, response.text
        item_id = response.json()["id"]
        assert stored("alice", item_id)["price"] == {"N": expected}
        # The JSON number in the response is the same text that was sent.
        assert f'"price":{text}' in response.text


def test_price_that_float_would_round_is_rejected_not_rounded(client: TestClient, auth: Auth) -> None:
    response = client.post(
        "/items",
        content=b'{"name": "n", "price": 0.10000000000000000555}',
        headers={**auth("alice"), "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "price"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": 1}, "name"),
        ({"name": "n"}, "price"),
        ({"name": "", "price": 1}, "name"),
        ({"name": "   ", "price": 1}, "name"),
        ({"name": "x" * 201, "price": 1}, "name"),
        ({"name": 5, "price": 1}, "name"),
        ({"name": "n", "price": 1, "description": "d" * 2001}, "description"),
        ({"name": "n", "price": "9.99"}, "price"),
        ({"name": "n", "price": True}, "price"),
        ({"name": "n", "price": -0.01}, "price"),
        ({"name": "n", "price": 1_000_000_000.01}, "price"),
        ({"name": "n", "price": 1.234}, "price"),
        ({"name": "n", "price": None}, "price"),
        ({"name": "n", "price": 1, "quantity": "3"}, "quantity"),
        ({"name": "n", "price": 1, "quantity": 3.5}, "quantity"),
        ({"name": "n", "price": 1, "quantity": True}, "quantity"),
        ({"name": "n", "price": 1, "quantity": -1}, "quantity"),
        ({"name": "n", "price": 1, "quantity": 1_000_000_001}, "quantity"),
        ({"name": "n", "price": 1, "tags": ["a", "a"]}, "tags"),
        ({"name": "n", "price": 1, "tags": [""]}, "tags"),
        ({"name": "n", "price": 1, "tags": [" "]}, "tags"),
        ({"name": "n", "price": 1, "tags": ["x" * 51]}, "tags"),
        ({"name": "n", "price": 1, "tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"name": "n", "price": 1, "tags": "tools"}, "tags"),
        ({"name": "n", "price": 1, "tags": [1]}, "tags"),
        ({"name": "n", "price": 1, "id": 5}, "id"),
        ({"name": "n", "price": 1, "version": 2}, "version"),
        ({"name": "n", "price": 1, "owner": "bob"}, "owner"),
        ({"name": "n", "price": 1, "created_at": "2026-01-01T00:00:00Z"}, "created_at"),
        ({"name": "n", "price": 1, "prize": 2}, "prize"),
    ],
)
def test_create_rejects_invalid_fields(
    client: TestClient, auth: Auth, body: dict[str, Any], field: str
) -> None:
    response = client.post("/items", json=body, headers=auth("alice"))
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(error["loc"][:2] == ["body", field] for error in errors), errors
    assert all({"loc", "msg", "type"} <= set(error) for error in errors)


def test_name_limits_count_code_points(client: TestClient, auth: Auth) -> None:
    name = "🙂" * 200  # 200 code points, 800 UTF-8 bytes
    item = create(client, auth, name=name)
    assert item["name"] == name
    assert create(client, auth, name="  padded  ")["name"] == "  padded  "  # stored as sent


def test_maximal_values_are_accepted(client: TestClient, auth: Auth) -> None:
    item = create(
        client,
        auth,
        name="n" * 200,
        description="d" * 2000,
        price=1_000_000_000,
        quantity=1_000_000_000,
        tags=[f"{i:02d}" + "t" * 48 for i in range(20)],
    )
    assert item["price"] == 1_000_000_000
    assert len(item["tags"]) == 20


@pytest.mark.parametrize(
    "content",
    [
        b'{"name": "n", "price": NaN}',
        b'{"name": "n", "price": Infinity}',
        b'{"name": "n", "price": -Infinity}',
        b'{"name": "n", "price": 1e400}',
        b'{"name": "n", "price": 1, "quantity": 1e5000}',
        b'{"name": "n", "price": 1, "quantity": ' + b"9" * 5000 + b"}",
        b'{"name": "n", "price": ',
        b"not json",
        b'{"name": "\xff", "price": 1}',
        b"[" * 8000 + b"]" * 8000,
        b"[]",
        b'"just a string"',
    ],
)
def test_malformed_or_non_json_numbers_are_422_never_500(
    client: TestClient, auth: Auth, content: bytes
) -> None:
    response = client.post(
        "/items", content=content, headers={**auth("alice"), "content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)


def test_missing_body_is_422(client: TestClient, auth: Auth) -> None:
    response = client.post("/items", headers=auth("alice"))
    assert response.status_code == 422


# --- read ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["0", "-1", "abc", "1.5", "1e3", "%20"])
def test_item_id_must_be_a_positive_integer(client: TestClient, auth: Auth, bad_id: str) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = client.request(method, f"/items/{bad_id}", json=WIDGET, headers=auth("alice"))
        assert response.status_code == 422, (method, response.text)
        assert response.json()["detail"][0]["loc"] == ["path", "item_id"]


def test_missing_item_is_404(client: TestClient, auth: Auth) -> None:
    response = client.get("/items/12345", headers=auth("alice"))
    assert response.status_code == 404
    assert response.json() == {"detail": "Item not found"}


def test_id_beyond_the_documented_maximum_is_422_not_500(client: TestClient, auth: Auth) -> None:
    parameters = client.get("/openapi.json").json()["paths"]["/items/{item_id}"]["get"]["parameters"]
    item_id = next(p for p in parameters if p["name"] == "item_id")
    assert item_id["schema"]["maximum"] == 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER
    for huge in (str(2**53), str(2**63 - 1), "9" * 60, "9" * 5000):
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            response = client.request(method, f"/items/{huge}", json=WIDGET, headers=auth("alice"))
            assert response.status_code == 422, (method, response.text)
            assert response.json()["detail"][0]["loc"] == ["path", "item_id"]
    # The largest valid id is simply not found.
    assert client.get(f"/items/{2**53 - 1}", headers=auth("alice")).status_code == 404


# --- replace (PUT) --------------------------------------------------------------------


def test_put_replaces_all_client_fields(client: TestClient, auth: Auth) -> None:
    item = create(client, auth, description="old", quantity=5, tags=["a", "b"])
    response = client.put(f"/items/{item['id']}", json={"name": "New", "price": 1.5}, headers=auth("alice"))
    assert response.status_code == 200, response.text
    replaced = response.json()
    assert replaced["name"] == "New"
    assert replaced["price"] == 1.5
    assert replaced["description"] is None  # omitted optional fields return to defaults
    assert replaced["quantity"] == 0
    assert replaced["tags"] == []
    assert replaced["version"] == 2
    assert replaced["created_at"] == item["created_at"]
    assert replaced["updated_at"] >= item["updated_at"]
    assert client.get(f"/items/{item['id']}", headers=auth("alice")).json() == replaced


def test_put_missing_item_is_404_and_creates_nothing(client: TestClient, auth: Auth, stored: Any) -> None:
    response = client.put("/items/77", json=WIDGET, headers=auth("alice"))
    assert response.status_code == 404
    assert stored("alice", 77) is None


def test_put_validates_like_create(client: TestClient, auth: Auth) -> None:
    item = create(client, auth)
    response = client.put(f"/items/{item['id']}", json={"name": "n"}, headers=auth("alice"))
    assert response.status_code == 422
    response = client.put(f"/items/{item['id']}", json={**WIDGET, "version": 9}, headers=auth("alice"))
    assert response.status_code == 422
    assert client.get(f"/items/{item['id']}", headers=auth("alice")).json() == item


# --- merge patch (PATCH) ------------------------------------------------------------


def test_patch_changes_only_present_fields(client: TestClient, auth: Auth) -> None:
    item = create(client, auth, description="desc", quantity=5)
    response = client.patch(f"/items/{item['id']}", json={"quantity": 7}, headers=auth("alice"))
    assert response.status_code == 200
    patched = response.json()
    assert patched == {
        **item,
        "quantity": 7,
        "version": 2,
        "updated_at": patched["updated_at"],
        "etag": f'"{item["id"]}-2"',
    }


def test_patch_null_resets_to_defaults(client: TestClient, auth: Auth, stored: Any) -> None:
    item = create(client, auth, description="desc", quantity=5, tags=["a"])
    response = client.patch(
        f"/items/{item['id']}",
        json={"description": None, "quantity": None, "tags": None},
        headers=auth("alice"),
    )
    assert response.status_code == 200
    patched = response.json()
    assert (patched["description"], patched["quantity"], patched["tags"]) == (None, 0, [])
    assert "description" not in stored("alice", item["id"])


@pytest.mark.parametrize("field", ["name", "price"])
def test_patch_null_name_or_price_is_422(client: TestClient, auth: Auth, field: str) -> None:
    item = create(client, auth)
    response = client.patch(f"/items/{item['id']}", json={field: None}, headers=auth("alice"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert client.get(f"/items/{item['id']}", headers=auth("alice")).json() == item


def test_empty_patch_returns_item_unchanged(client: TestClient, auth: Auth) -> None:
    item = create(client, auth)
    response = client.patch(f"/items/{item['id']}", json={}, headers=auth("alice"))
    assert response.status_code == 200
    assert response.json() == item


@pytest.mark.parametrize(
    "body",
    [{"id": 3}, {"version": 5}, {"price": "1"}, {"quantity": 1.5}, {"tags": ["a", "a"]}, {"name": " "}],
)
def test_patch_rejects_invalid_bodies(client: TestClient, auth: Auth, body: dict[str, Any]) -> None:
    item = create(client, auth)
    response = client.patch(f"/items/{item['id']}", json=body, headers=auth("alice"))
    assert response.status_code == 422
    assert client.get(f"/items/{item['id']}", headers=auth("alice")).json() == item


def test_patch_missing_item_is_404(client: TestClient, auth: Auth, stored: Any) -> None:
    assert client.patch("/items/5", json={"quantity": 1}, headers=auth("alice")).status_code == 404
    assert client.patch("/items/5", json={}, headers=auth("alice")).status_code == 404
    assert stored("alice", 5) is None


def test_every_change_increments_version(client: TestClient, auth: Auth) -> None:
    item = create(client, auth)
    for expected in range(2, 6):
        response = client.patch(f"/items/{item['id']}", json={"quantity": expected}, headers=auth("alice"))
        assert response.json()["version"] == expected


# --- delete ---------------------------------------------------------------------------


def test_delete_is_204_then_404(client: TestClient, auth: Auth) -> None:
    item = create(client, auth)
    response = client.delete(f"/items/{item['id']}", headers=auth("alice"))
    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/items/{item['id']}", headers=auth("alice")).status_code == 404
    assert client.delete(f"/items/{item['id']}", headers=auth("alice")).status_code == 404


# --- errors -----------------------------------------------------------------------------


def test_unexpected_failure_is_generic_500(
    client: TestClient, auth: Auth, caplog: pytest.LogCaptureFixture
) -> None:
    from app.dependencies import get_dynamodb_client

    def explode(**_: Any) -> None:
        raise RuntimeError("DynamoDB said something secret about table items-test")

    get_dynamodb_client().meta.events.register("before-call.dynamodb.GetItem", explode)
    response = client.get("/items/1", headers=auth("alice"))
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json() == {"detail": "Internal Server Error", "request_id": request_id}
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    logged = [
        record for record in caplog.records if record.name == "items-api" and record.levelname == "ERROR"
    ]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert getattr(logged[0], "request_id", "") == request_id


_ITEM_BODY_WRITE = {"200", "401", "403", "404", "409", "412", "413", "415", "422", "429", "500", "503"}
EXPECTED_STATUSES = {
    # 500: only a misconfigured function (every request reads the settings).
    ("/health", "get"): {"200", "500"},
    # 413 and 429 (the owner's rate) on every item route; 415 only where a body is read (POST, PUT,
    # PATCH); 409 only with Idempotency-Key (writes); 403 for an owner id too long to store.
    ("/items", "get"): {"200", "401", "403", "413", "422", "429", "500", "503"},
    ("/items", "post"): {"201", "401", "403", "409", "413", "415", "422", "429", "500", "503"},
    ("/items/{item_id}", "get"): {"200", "304", "401", "403", "404", "413", "422", "429", "500", "503"},
    ("/items/{item_id}", "put"): _ITEM_BODY_WRITE,
    ("/items/{item_id}", "patch"): _ITEM_BODY_WRITE,
    ("/items/{item_id}", "delete"): {
        "204",
        "401",
        "403",
        "404",
        "409",
        "412",
        "413",
        "422",
        "429",
        "500",
        "503",
    },
}


def test_openapi_declares_every_status_each_operation_can_return(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    declared = {
        (path, method): set(operation["responses"])
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }
    assert declared == EXPECTED_STATUSES
    post = schema["paths"]["/items"]["post"]
    assert {"name": "idempotency-key", "in": "header"}.items() <= next(
        p for p in post["parameters"] if p["name"] == "idempotency-key"
    ).items()
    assert "Retry-After" in post["responses"]["503"]["headers"]
    assert "ETag" in schema["paths"]["/items/{item_id}"]["get"]["responses"]["200"]["headers"]
