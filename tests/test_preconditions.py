"""ETag, If-None-Match and If-Match: conditional requests enforced by DynamoDB conditions."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.preconditions import parse_if_match

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def item(client: TestClient, auth: Auth) -> dict[str, Any]:
    response = client.post("/items", json={"name": "Widget", "price": 1}, headers=auth("alice"))
    return {**response.json(), "etag": response.headers["etag"]}


def test_every_item_response_has_a_strong_etag_that_changes(
    client: TestClient, auth: Auth, item: dict[str, Any]
) -> None:
    path = f"/items/{item['id']}"
    assert item["etag"].startswith('"')
    assert client.get(path, headers=auth("alice")).headers["etag"] == item["etag"]
    put = client.put(path, json={"name": "W", "price": 2}, headers=auth("alice"))
    patch = client.patch(path, json={"quantity": 1}, headers=auth("alice"))
    etags = [item["etag"], put.headers["etag"], patch.headers["etag"]]
    assert len(set(etags)) == 3
    assert client.get(path, headers=auth("alice")).headers["etag"] == etags[-1]


def test_if_none_match_current_is_304_without_body(
    client: TestClient, auth: Auth, item: dict[str, Any]
) -> None:
    path = f"/items/{item['id']}"
    for header in (item["etag"], f'"x", {item["etag"]}', f"W/{item['etag']}", "*"):
        response = client.get(path, headers={**auth("alice"), "If-None-Match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == item["etag"]
    client.patch(path, json={"quantity": 2}, headers=auth("alice"))
    stale = client.get(path, headers={**auth("alice"), "If-None-Match": item["etag"]})
    assert stale.status_code == 200
    assert stale.json()["quantity"] == 2


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_stale_if_match_is_412_and_changes_nothing(
    client: TestClient, auth: Auth, item: dict[str, Any], method: str
) -> None:
    path = f"/items/{item['id']}"
    client.patch(path, json={"quantity": 1}, headers=auth("alice"))  # item["etag"] is now stale
    before = client.get(path, headers=auth("alice")).json()
    for stale in (item["etag"], f"W/{before['id']}", '"1-999"', '"999-2"', "garbage"):
        response = client.request(
            method, path, json={"name": "x", "price": 5}, headers={**auth("alice"), "If-Match": stale}
        )
        assert response.status_code == 412, (stale, response.text)
        assert response.json() == {"detail": "Precondition Failed"}
    assert client.get(path, headers=auth("alice")).json() == before


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_current_if_match_or_star_succeeds(
    client: TestClient, auth: Auth, item: dict[str, Any], method: str
) -> None:
    path = f"/items/{item['id']}"
    for header in (item["etag"], "*"):
        current = client.get(path, headers=auth("alice"))
        if current.status_code == 404:
            break
        if_match = current.headers["etag"] if header != "*" else "*"
        response = client.request(
            method, path, json={"name": "x", "price": 5}, headers={**auth("alice"), "If-Match": if_match}
        )
        assert response.status_code in (200, 204), response.text


def test_if_match_on_missing_item_is_404(client: TestClient, auth: Auth) -> None:
    for method in ("PUT", "PATCH", "DELETE"):
        response = client.request(
            method, "/items/42", json={"name": "x", "price": 1}, headers={**auth("alice"), "If-Match": "*"}
        )
        assert response.status_code == 404


def test_empty_patch_honours_if_match(client: TestClient, auth: Auth, item: dict[str, Any]) -> None:
    path = f"/items/{item['id']}"
    ok = client.patch(path, json={}, headers={**auth("alice"), "If-Match": item["etag"]})
    assert ok.status_code == 200
    stale = client.patch(path, json={}, headers={**auth("alice"), "If-Match": '"1-99"'})
    assert stale.status_code == 412


def test_etags_of_other_owners_never_match(client: TestClient, auth: Auth, item: dict[str, Any]) -> None:
    response = client.patch(
        f"/items/{item['id']}", json={"quantity": 9}, headers={**auth("bob"), "If-Match": item["etag"]}
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("*", "*"),
        (" * ", "*"),
        ('"7-3"', [3]),
        ('"7-3", "7-4"', [3, 4]),
        ('W/"7-3"', []),
        ('"8-3"', []),
        ("7-3", []),
        ('"7-"', []),
        ("", []),
    ],
)
def test_parse_if_match(header: str | None, expected: Any) -> None:
    assert parse_if_match(header, 7) == expected


def test_preconditions_cost_no_extra_read(
    client: TestClient, auth: Auth, item: dict[str, Any], calls: list[str]
) -> None:
    path = f"/items/{item['id']}"
    matching = {**auth("alice"), "If-Match": item["etag"]}
    # The 412s come from the write's failed condition itself: one call each, no read first.
    for request, status in (
        (lambda: client.patch(path, json={"quantity": 1}, headers=matching), 200),
        (lambda: client.patch(path, json={"quantity": 2}, headers=matching), 412),  # stale now
        (lambda: client.delete(path, headers=matching), 412),
    ):
        calls.clear()
        assert request().status_code == status
        assert len(calls) <= 1, calls
