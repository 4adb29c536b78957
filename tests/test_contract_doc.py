"""docs/contract.md checked against the app: its routes table, its headers table and its error bodies."""

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from devtools.template import REPO_ROOT
from items_core.models import Error

CONTRACT = (REPO_ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
Auth = Callable[[str], dict[str, str]]
# A status in a table cell: at its start or after ", " (not the 100 of a range "1-100").
_STATUS = re.compile(r"(?:^|, )([1-5]\d\d)\b")


def _table(first_header: str) -> list[list[str]]:
    """The rows of the markdown table whose header row starts with `first_header`."""
    lines = CONTRACT[CONTRACT.index(f"| {first_header} |") :].splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def _operation(cell: str) -> tuple[str, str]:
    method, path = cell.split("`")[1].split(" ", 1)
    return method.lower(), path.split("?")[0]


def test_the_routes_table_lists_exactly_the_statuses_the_schema_declares(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    rows = _table("method & path")
    documented = {_operation(row[0]) for row in rows}
    served = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert documented == served
    for cell, success, errors in rows:
        method, path = _operation(cell)
        listed = {status for text in (success, errors) for status in _STATUS.findall(text)}
        assert listed == set(document["paths"][path][method]["responses"]), cell


@pytest.fixture
def answers(client: TestClient, auth: Auth) -> dict[str, Any]:
    """One response of each situation the headers table names."""
    alice = auth("alice")
    key = {**alice, "Idempotency-Key": "contract"}
    created = client.post("/items", json={"name": "Hose", "price": 1}, headers=key)
    path = created.headers["location"]
    return {
        "created": created,
        "replayed": client.post("/items", json={"name": "Hose", "price": 1}, headers=key),
        "item": client.get(path, headers=alice),
        "not modified": client.get(path, headers={**alice, "If-None-Match": created.headers["etag"]}),
        "listing": client.get("/items", headers=alice),
        "unauthenticated": client.get("/items"),
        "health": client.get("/health"),
        "docs": client.get("/docs"),
    }


def test_the_headers_table_holds(answers: dict[str, Any]) -> None:
    rows = {row[0]: row for row in _table("header")}
    names = set(rows)
    assert "`X-Request-ID`" in names
    assert "`ETag`" in names
    for response in answers.values():
        assert response.headers["x-request-id"]
        for name in ("strict-transport-security", "content-security-policy", "referrer-policy"):
            assert name in response.headers
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    for situation in ("created", "replayed", "item", "not modified"):
        assert re.fullmatch(r'"\d+-\d+"', answers[situation].headers["etag"]), situation
    assert answers["created"].headers["location"] == f"/items/{answers['created'].json()['id']}"
    assert answers["replayed"].headers["idempotent-replayed"] == "true"
    assert answers["unauthenticated"].headers["www-authenticate"] == "Bearer"
    for situation in ("created", "item", "listing", "unauthenticated"):
        assert answers[situation].headers["cache-control"] == "no-store", situation
    assert "cache-control" not in answers["health"].headers
    # Each header the table names is one of those checked here (Retry-After: tests/test_failures.py).
    checked = {"X-Request-ID", "ETag", "Location", "Idempotent-Replayed", "Retry-After", "WWW-Authenticate"}
    checked |= {"Cache-Control", "Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options"}
    checked |= {"Referrer-Policy", "Content-Security-Policy"}
    named = {name for cell in names for name in re.findall(r"`([A-Za-z-]+)(?::[^`]*)?`", cell)}
    assert named == checked


def test_every_error_body_the_contract_shows_is_the_one_error_shape() -> None:
    bodies = re.findall(r'`(?:\d{3} )?(\{"detail": [^`]*\})`', CONTRACT)
    assert len(bodies) >= 7
    for body in bodies:
        text = re.sub(r"\s*\n\s*", " ", body).replace("…", "x")
        if "[...]" in text or '"loc", "msg"' in text:  # an outline of the 422 list, not a body
            continue
        Error.model_validate(json.loads(text))
