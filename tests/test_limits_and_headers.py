"""Body size limits, response size, and the headers every response carries."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.routes.request_body import MAX_BODY_BYTES
from tests.conftest import LambdaContext, http_api_event, lambda_handler, response_headers, response_json

Auth = Callable[[str], dict[str, str]]


def padded_body(size: int) -> bytes:
    body = json.dumps({"name": "n", "price": 1}).encode()
    return body + b" " * (size - len(body))  # JSON allows trailing whitespace


@pytest.mark.parametrize(("method", "path"), [("POST", "/items"), ("PUT", "/items/1"), ("PATCH", "/items/1")])
def test_oversize_body_is_413(client: TestClient, auth: Auth, method: str, path: str) -> None:
    body = padded_body(MAX_BODY_BYTES + 1)
    headers = {**auth("alice"), "content-type": "application/json"}
    response = client.request(method, path, content=body, headers=headers)
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body too large: the limit is 16384 bytes"}
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize("path", ["/items", "/items/1", "/health"])
def test_options_caps_its_body_too(client: TestClient, path: str) -> None:
    """OPTIONS answers what a path allows (204), and a body over the limit like every method: 413."""
    assert client.options(path).status_code == 204
    for headers in ({}, {"transfer-encoding": "chunked"}):
        body = padded_body(MAX_BODY_BYTES + 1)
        response = client.request("OPTIONS", path, content=iter([body]) if headers else body, headers=headers)
        assert response.status_code == 413
        assert response.json() == {"detail": "Request body too large: the limit is 16384 bytes"}


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_every_method_caps_the_body_before_anything_reads_it(
    client: TestClient, auth: Auth, stored: Any, method: str
) -> None:
    # A DELETE with an Idempotency-Key once read 60 MB bodies while the other routes answered 413.
    item = client.post("/items", json={"name": "Lamp", "price": 1}, headers=auth("alice")).json()
    headers = {**auth("alice"), "Idempotency-Key": f"cap-{method}"}
    body = padded_body(MAX_BODY_BYTES + 1)
    response = client.request(method, f"/items/{item['id']}", content=body, headers=headers)
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body too large: the limit is 16384 bytes"}
    assert stored("alice", item["id"]) is not None  # nothing deleted
    # The key was never claimed: the same key with no body is this request's first answer.
    assert client.request(method, f"/items/{item['id']}", headers=headers).status_code in {200, 204}


@pytest.mark.parametrize(("method", "path"), [("POST", "/health"), ("POST", "/items/1")])
def test_a_body_no_route_reads_is_never_judged(
    client: TestClient, auth: Auth, method: str, path: str
) -> None:
    # The method and path are judged first: no route reads a body here, so its size is no matter.
    response = client.request(method, path, content=padded_body(MAX_BODY_BYTES * 4), headers=auth("alice"))
    assert response.status_code in {404, 405}


def test_body_at_the_limit_is_accepted(client: TestClient, auth: Auth) -> None:
    body = padded_body(MAX_BODY_BYTES)
    response = client.post(
        "/items", content=body, headers={**auth("alice"), "content-type": "application/json"}
    )
    assert response.status_code == 201


def test_lying_content_length_is_counted_not_trusted(app: FastAPI) -> None:
    handler = lambda_handler()
    for declared in ("100", "0"):
        event = http_api_event(
            "POST",
            "/items",
            owner="alice",
            body=padded_body(MAX_BODY_BYTES + 1),
            headers={"content-length": declared},
        )
        assert handler(event, LambdaContext())["statusCode"] == 413


@pytest.mark.parametrize("length", ["99999999", "16385", "-5", "abc", ""])
def test_declared_oversize_or_malformed_length_is_413_before_reading(app: FastAPI, length: str) -> None:
    # Through the Lambda handler: no HTTP server in front to reject the header first.
    handler = lambda_handler()
    event = http_api_event(
        "POST", "/items", owner="alice", body={"name": "n", "price": 1}, headers={"content-length": length}
    )
    assert handler(event, LambdaContext())["statusCode"] == 413


def test_lambda_oversize_body_is_413(app: FastAPI) -> None:
    handler = lambda_handler()
    event = http_api_event("POST", "/items", owner="alice", body=padded_body(MAX_BODY_BYTES + 1))
    response = handler(event, LambdaContext())
    assert response["statusCode"] == 413


def test_every_response_carries_request_id_and_security_headers(client: TestClient, auth: Auth) -> None:
    responses = [
        client.get("/health"),
        client.get("/items"),  # 401
        client.get("/items", headers=auth("alice")),
        client.get("/items/abc", headers=auth("alice")),  # 422
        client.get("/nowhere"),  # 404
        client.post("/items", content=padded_body(MAX_BODY_BYTES + 1), headers=auth("alice")),  # 413
        client.get("/openapi.json"),
    ]
    ids = set()
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert response.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        ids.add(response.headers["x-request-id"])
    assert len(ids) == len(responses)  # generated per request when there is no API Gateway id


def test_items_responses_are_not_cacheable_but_docs_work(client: TestClient, auth: Auth) -> None:
    assert client.get("/items", headers=auth("alice")).headers["cache-control"] == "no-store"
    assert client.get("/items").headers["cache-control"] == "no-store"  # errors too
    assert "cache-control" not in client.get("/health").headers
    docs = client.get("/docs")
    policy = docs.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline'" in policy  # Swagger UI's assets come from the API itself
    assert "/docs/assets/swagger-ui-bundle.js" in docs.text
    assert "script-src" not in client.get("/health").headers["content-security-policy"]


def test_lambda_request_id_is_api_gateways(app: FastAPI) -> None:
    handler = lambda_handler()
    response = handler(http_api_event("GET", "/items", owner="alice", stage="dev"), LambdaContext())
    headers = response_headers(response)
    assert headers["x-request-id"] == "apigw-request-id"
    assert headers["cache-control"] == "no-store"
    assert response_json(response) == {"items": [], "next_cursor": None}
    docs = handler(http_api_event("GET", "/docs", stage="dev"), LambdaContext())
    assert "script-src 'self'" in response_headers(docs)["content-security-policy"]
