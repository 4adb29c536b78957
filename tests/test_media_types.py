"""Media types by the book (RFC 9110, 8259, 7396) and one rule for text in query strings."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

Auth = Callable[[str], dict[str, str]]
BODY = b'{"name": "Widget", "price": 1}'


@pytest.fixture
def item(client: TestClient, auth: Auth) -> str:
    created = client.post("/items", json={"name": "Widget", "price": 1}, headers=auth("alice"))
    return str(created.headers["location"])


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",  # plain `curl -d`
        "application/vnd.foo+json",
        "application/json-seq",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
        None,
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_a_body_of_another_media_type_is_415_naming_what_is_accepted(
    client: TestClient, auth: Auth, item: str, method: str, content_type: str | None
) -> None:
    headers = {**auth("alice"), "Idempotency-Key": "k"}
    if content_type is not None:
        headers["content-type"] = content_type
    path = "/items" if method == "POST" else item
    response = client.request(method, path, content=BODY, headers=headers)
    assert response.status_code == 415, response.text
    detail = response.json()["detail"]
    assert "application/json" in detail or "utf-8" in detail
    if method == "PATCH":
        assert response.headers["accept-patch"] == "application/json, application/merge-patch+json"
    assert client.get("/items", headers=auth("alice")).json()["items"][0]["version"] == 1  # nothing written
    # The key was never claimed: the same key with an accepted body runs.
    headers["content-type"] = "application/json"
    assert client.request(method, path, content=BODY, headers=headers).status_code in {200, 201}


@pytest.mark.parametrize(
    ("method", "content_type"),
    [
        ("POST", "application/json"),
        ("POST", "Application/JSON; Charset=UTF-8"),
        ("PUT", 'application/json; charset="utf-8"'),
        ("PATCH", "application/merge-patch+json"),
        ("PATCH", "application/json"),
    ],
)
def test_the_declared_media_types_are_accepted(
    client: TestClient, auth: Auth, item: str, method: str, content_type: str
) -> None:
    path = "/items" if method == "POST" else item
    response = client.request(
        method, path, content=BODY, headers={**auth("alice"), "content-type": content_type}
    )
    assert response.status_code in {200, 201}, response.text


def test_the_schema_declares_what_each_body_route_accepts(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/items"]["post"]["requestBody"]["content"]) == {"application/json"}
    assert set(paths["/items/{item_id}"]["put"]["requestBody"]["content"]) == {"application/json"}
    patch = paths["/items/{item_id}"]["patch"]["requestBody"]["content"]
    assert set(patch) == {"application/json", "application/merge-patch+json"}
    assert patch["application/json"]["schema"] == patch["application/merge-patch+json"]["schema"]
    for operation in (
        paths["/items"]["post"],
        paths["/items/{item_id}"]["put"],
        paths["/items/{item_id}"]["patch"],
    ):
        assert "415" in operation["responses"]


def test_accept_is_not_consulted(client: TestClient, auth: Auth, item: str) -> None:
    response = client.get(item, headers={**auth("alice"), "accept": "text/html"})
    assert (response.status_code, response.headers["content-type"]) == (200, "application/json")


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("q=%FF", "q"),  # not UTF-8
        ("tag=%C3%28", "tag"),  # a broken two-byte sequence
        ("q=%ED%A0%80", "q"),  # a UTF-16 surrogate, which UTF-8 cannot carry
        ("limit=1&%FF=x", "%FF"),  # in a name too
        ("q=%00", "q"),  # control characters, refused as in names and tags
        ("tag=a%1Fb", "tag"),
        ("q=%C2%85", "q"),  # C1
    ],
)
def test_query_text_follows_the_bodys_rules(client: TestClient, auth: Auth, query: str, name: str) -> None:
    response = client.get(f"/items?{query}", headers=auth("alice"))
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", name]


@pytest.mark.parametrize("query", ["q=caf%C3%A9", "tag=%E2%9C%93", "q=a+b", "q="])
def test_valid_utf8_queries_are_served(client: TestClient, auth: Any, query: str) -> None:
    assert client.get(f"/items?{query}", headers=auth("alice")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "content", "content_type"),
    [
        ("POST", "/items", b"x", "text/plain"),  # would be 415
        ("POST", "/items", b"{" * 20_000, "application/json"),  # would be 413
        ("POST", "/items", b"{", "application/json"),  # would be 422
        ("GET", "/items?q=%FF", b"", None),  # would be 422
        ("PATCH", "/items/1", b"[]", "application/json"),
    ],
)
def test_who_calls_is_judged_first(
    client: TestClient, method: str, path: str, content: bytes, content_type: str | None
) -> None:
    # Deployed, API Gateway's authorizer answers 401 before the function sees the request.
    headers = {"content-type": content_type} if content_type else {}
    response = client.request(method, path, content=content, headers=headers)
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": "Not authenticated"}
