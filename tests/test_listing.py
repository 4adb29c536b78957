"""GET /items: order, filters, limits and cursors."""

import base64
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

Auth = Callable[[str], dict[str, str]]


def seed(client: TestClient, auth: Auth, items: list[dict[str, Any]], owner: str = "alice") -> list[int]:
    ids = []
    for fields in items:
        response = client.post("/items", json={"price": 1, **fields}, headers=auth(owner))
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def walk(client: TestClient, auth: Auth, owner: str = "alice", **params: Any) -> tuple[list[int], int]:
    """Follow next_cursor to the end; the ids seen and the number of pages."""
    seen: list[int] = []
    pages = 0
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get("/items", params=query, headers=auth(owner))
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        pages += 1
        seen.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages
        assert pages < 200, "cursor walk does not end"


def test_empty_listing(client: TestClient, auth: Auth) -> None:
    response = client.get("/items", headers=auth("alice"))
    assert response.json() == {"items": [], "next_cursor": None}


def test_default_page_is_20_in_id_order(client: TestClient, auth: Auth) -> None:
    ids = seed(client, auth, [{"name": f"item {i}"} for i in range(25)])
    first = client.get("/items", headers=auth("alice")).json()
    assert [item["id"] for item in first["items"]] == ids[:20]
    assert first["next_cursor"] is not None
    second = client.get("/items", params={"cursor": first["next_cursor"]}, headers=auth("alice")).json()
    assert [item["id"] for item in second["items"]] == ids[20:]
    assert second["next_cursor"] is None


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 100])
def test_cursor_walk_returns_every_item_once(client: TestClient, auth: Auth, limit: int) -> None:
    ids = seed(client, auth, [{"name": f"n{i}"} for i in range(12)])
    seen, pages = walk(client, auth, limit=limit)
    assert seen == ids
    assert pages == max(1, -(-len(ids) // limit))  # no trailing empty page when unfiltered


def test_exactly_full_last_page_has_no_cursor(client: TestClient, auth: Auth) -> None:
    seed(client, auth, [{"name": f"n{i}"} for i in range(4)])
    body = client.get("/items", params={"limit": 4}, headers=auth("alice")).json()
    assert len(body["items"]) == 4
    assert body["next_cursor"] is None


def test_unfiltered_page_is_one_query(client: TestClient, auth: Auth, calls: list[str]) -> None:
    seed(client, auth, [{"name": f"n{i}"} for i in range(5)])
    calls.clear()
    assert len(client.get("/items", params={"limit": 2}, headers=auth("alice")).json()["items"]) == 2
    assert len(calls) <= 1, calls


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5"])
def test_limit_out_of_range_is_422(client: TestClient, auth: Auth, limit: str) -> None:
    response = client.get("/items", params={"limit": limit}, headers=auth("alice"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "limit"]


def test_q_is_case_insensitive_substring_of_name(client: TestClient, auth: Auth) -> None:
    ids = seed(
        client,
        auth,
        [{"name": "Blue Widget"}, {"name": "gadget"}, {"name": "WIDGETS galore"}, {"name": "Straße"}],
    )
    seen, _ = walk(client, auth, q="widget")
    assert seen == [ids[0], ids[2]]
    assert walk(client, auth, q="STRASSE")[0] == [ids[3]]  # full case folding
    assert walk(client, auth, q="")[0] == ids  # empty means no filter


def test_tag_matches_exact_tags(client: TestClient, auth: Auth) -> None:
    ids = seed(
        client,
        auth,
        [
            {"name": "a", "tags": ["tools"]},
            {"name": "b", "tags": ["toolset"]},
            {"name": "c", "tags": ["x", "tools"]},
        ],
    )
    assert walk(client, auth, tag="tools")[0] == [ids[0], ids[2]]
    assert walk(client, auth, tag="tool")[0] == []
    assert walk(client, auth, tag="")[0] == ids


def test_q_and_tag_combine(client: TestClient, auth: Auth) -> None:
    ids = seed(
        client,
        auth,
        [
            {"name": "red hammer", "tags": ["tools"]},
            {"name": "red apple", "tags": ["food"]},
            {"name": "blue hammer", "tags": ["tools"]},
        ],
    )
    assert walk(client, auth, q="RED", tag="tools")[0] == [ids[0]]


@pytest.mark.slow
def test_sparse_filter_walk_is_complete(client: TestClient, auth: Auth) -> None:
    # 250 items, every 60th matches: pages may be short or empty but the walk
    # must still find all of them exactly once.
    items = [{"name": f"match {i}" if i % 60 == 0 else f"other {i}"} for i in range(250)]
    ids = seed(client, auth, items)
    expected = [
        item_id for item_id, fields in zip(ids, items, strict=True) if fields["name"].startswith("match")
    ]
    for limit in (1, 2, 20):
        seen, _ = walk(client, auth, q="match", limit=limit)
        assert seen == expected


def test_listing_only_shows_own_items(client: TestClient, auth: Auth) -> None:
    alice = seed(client, auth, [{"name": "mine"}], owner="alice")
    seed(client, auth, [{"name": "mine too"}], owner="bob")
    assert walk(client, auth, "alice")[0] == alice
    assert walk(client, auth, "alice", q="mine")[0] == alice


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "",
        "!!!",
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b'{"a": "1", "f": "x"}').decode(),
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        "x" * 600,
    ],
)
def test_unusable_cursor_is_422_naming_cursor(client: TestClient, auth: Auth, cursor: str) -> None:
    response = client.get("/items", params={"cursor": cursor}, headers=auth("alice"))
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_cursor_of_another_query_is_422(client: TestClient, auth: Auth) -> None:
    seed(client, auth, [{"name": "widget", "tags": ["t"]} for _ in range(3)])
    cursor = client.get("/items", params={"limit": 1, "q": "widget"}, headers=auth("alice")).json()[
        "next_cursor"
    ]
    assert cursor is not None
    for params in ({"q": "other"}, {"tag": "t", "q": "widget"}, {}):
        response = client.get(
            "/items", params={**params, "cursor": cursor, "limit": 1}, headers=auth("alice")
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_the_documents_example_cursor_is_shaped_like_one_and_refused(client: TestClient, auth: Auth) -> None:
    """A generated client shows a real-looking cursor; sent, it is a 422 (no stack signed it)."""
    from tests.schemathesis_hooks import DOCUMENT_EXAMPLE_CURSOR, ISSUED_CURSOR

    [cursor] = [
        parameter
        for parameter in client.get("/openapi.json").json()["paths"]["/items"]["get"]["parameters"]
        if parameter["name"] == "cursor"
    ]
    assert cursor["schema"]["examples"] == [DOCUMENT_EXAMPLE_CURSOR]  # what the fuzzers' hooks leave out
    assert ISSUED_CURSOR.fullmatch(DOCUMENT_EXAMPLE_CURSOR)
    seed(client, auth, [{"name": "n"}])
    refused = client.get("/items", params={"cursor": DOCUMENT_EXAMPLE_CURSOR}, headers=auth("alice"))
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize(
    ("cursor", "kept"),
    [("", False), ("not-one", False), ("AQAAAAAAAAAqdgLxYIVLvoJttEr40PMGyA", False), ("A" * 34, True)],
)
def test_the_fuzzers_positive_cases_carry_only_cursors_of_the_issued_shape(cursor: str, kept: bool) -> None:
    """The hooks drop a generated (or the document's example) cursor; one followed from a page stays."""
    from types import SimpleNamespace

    from tests.schemathesis_hooks import map_case

    case = SimpleNamespace(meta=None, headers=None, query={"cursor": cursor, "q": "x"})
    assert ("cursor" in map_case(None, case).query) is kept
