"""Who may see what: the local auth mode and owner isolation."""

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.auth import owner_from_event
from app.local_auth import ALGORITHM, AUDIENCE, ISSUER, issue_token, verify_token
from app.settings import Settings, get_settings
from tests.conftest import LOCAL_SECRET

Auth = Callable[[str], dict[str, str]]
ITEM = {"name": "Widget", "price": 1}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def forged(**overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60, "sub": "alice", **overrides}
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, LOCAL_SECRET, algorithm=ALGORITHM)


ITEM_ROUTES = [
    ("GET", "/items"),
    ("POST", "/items"),
    ("GET", "/items/1"),
    ("PUT", "/items/1"),
    ("PATCH", "/items/1"),
    ("DELETE", "/items/1"),
]


@pytest.mark.parametrize(("method", "path"), ITEM_ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic YWxpY2U6cHc="},
        bearer("not-a-jwt"),
        bearer(forged(exp=int(time.time()) - 10)),
        bearer(forged(aud="someone-else")),
        bearer(forged(iss="https://evil.example")),
        bearer(forged(sub=None)),
        bearer(forged(sub="")),
        bearer(jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")),
        bearer(issue_token("another-secret-of-thirty-two-characters!", "alice")),
    ],
    ids=[
        "none",
        "empty-bearer",
        "basic",
        "garbage",
        "expired",
        "wrong-audience",
        "wrong-issuer",
        "no-sub",
        "empty-sub",
        "no-iss-aud",
        "other-key",
    ],
)
def test_items_routes_need_a_valid_token(
    client: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    response = client.request(method, path, json=ITEM, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}
    assert response.headers["www-authenticate"] == "Bearer"


def test_unsigned_token_is_refused(client: TestClient) -> None:
    token = jwt.encode({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": 1, "exp": 2**40}, None, "none")
    assert client.get("/items", headers=bearer(token)).status_code == 401


def test_401_comes_before_body_validation(client: TestClient) -> None:
    response = client.post("/items", json={"bogus": True})
    assert response.status_code == 401


def test_other_owners_items_are_invisible(client: TestClient, auth: Auth, stored: Any) -> None:
    item = client.post("/items", json=ITEM, headers=auth("alice")).json()
    path = f"/items/{item['id']}"
    assert client.get(path, headers=auth("bob")).status_code == 404
    assert client.put(path, json={"name": "bob's", "price": 2}, headers=auth("bob")).status_code == 404
    assert client.patch(path, json={"name": "bob's"}, headers=auth("bob")).status_code == 404
    assert client.patch(path, json={}, headers=auth("bob")).status_code == 404
    assert client.delete(path, headers=auth("bob")).status_code == 404
    assert client.get("/items", headers=auth("bob")).json() == {"items": [], "next_cursor": None}
    # Nothing of alice's changed, and bob got no item of his own either.
    assert client.get(path, headers=auth("alice")).json() == item
    assert stored("bob", item["id"]) is None


def test_owner_claim_is_configurable(monkeypatch: pytest.MonkeyPatch, local_auth: None, app: FastAPI) -> None:
    monkeypatch.setenv("OWNER_CLAIM", "email")
    get_settings.cache_clear()
    with TestClient(app) as client:
        token = issue_token(LOCAL_SECRET, "alice@example.com", owner_claim="email")
        created = client.post("/items", json=ITEM, headers=bearer(token))
        assert created.status_code == 201
        # A token that only has `sub` does not name an owner under this setting.
        assert client.get("/items", headers=bearer(issue_token(LOCAL_SECRET, "alice"))).status_code == 401


def test_apigateway_mode_ignores_bearer_tokens(environment: None, app: FastAPI) -> None:
    # Without API Gateway's verified claims, no header can authenticate: the
    # local mode is a deployment setting and can never be switched on by a request.
    with TestClient(app) as client:
        token = issue_token(LOCAL_SECRET, "alice")
        headers = {**bearer(token), "X-Auth-Mode": "local", "Auth-Mode": "local"}
        assert client.get("/items?auth_mode=local", headers=headers).status_code == 401


def test_local_mode_needs_a_strong_secret(monkeypatch: pytest.MonkeyPatch, environment: None) -> None:
    monkeypatch.setenv("AUTH_MODE", "local")
    monkeypatch.setenv("LOCAL_JWT_SECRET", "short")
    with pytest.raises(ValidationError, match="LOCAL_JWT_SECRET"):
        Settings()  # type: ignore[call-arg]


def test_local_mode_is_refused_in_a_deployed_function(
    monkeypatch: pytest.MonkeyPatch, environment: None
) -> None:
    monkeypatch.setenv("AUTH_MODE", "local")
    monkeypatch.setenv("LOCAL_JWT_SECRET", LOCAL_SECRET)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "items-api-ApiFunction")
    with pytest.raises(ValidationError, match="refused inside a deployed Lambda"):
        Settings()  # type: ignore[call-arg]
    monkeypatch.setenv("AWS_SAM_LOCAL", "true")  # what `sam local` sets
    assert Settings().auth_mode == "local"  # type: ignore[call-arg]


def test_token_round_trip() -> None:
    assert verify_token(LOCAL_SECRET, issue_token(LOCAL_SECRET, "alice")) == "alice"
    assert verify_token(LOCAL_SECRET, issue_token(LOCAL_SECRET, "alice", ttl_seconds=-5)) is None


@pytest.mark.parametrize(
    ("event", "owner"),
    [
        ({"requestContext": {"authorizer": {"jwt": {"claims": {"sub": "a"}}}}}, "a"),
        ({"requestContext": {"authorizer": {"claims": {"sub": "b"}}}}, "b"),
        ({"requestContext": {"authorizer": {"jwt": {"claims": {"sub": ""}}}}}, None),
        ({"requestContext": {"authorizer": {"jwt": {"claims": {"sub": 5}}}}}, None),
        ({"requestContext": {"authorizer": {"iam": {"userId": "x"}}}}, None),
        ({"requestContext": {"authorizer": None}}, None),
        ({"requestContext": {"elb": {}}}, None),
        ({}, None),
        (None, None),
    ],
)
def test_owner_from_event(event: Any, owner: str | None) -> None:
    assert owner_from_event(event, "sub") == owner


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TABLE_NAME", None, "TABLE_NAME: Field required (expected: a DynamoDB table name"),
        ("DYNAMODB_MAX_ATTEMPTS", "many", "DYNAMODB_MAX_ATTEMPTS: Input should be a valid integer"),
        (
            "DYNAMODB_READ_TIMEOUT",
            "0",
            "DYNAMODB_READ_TIMEOUT: Input should be greater than 0 (expected: seconds",
        ),
        ("AUTH_MODE", "open", "AUTH_MODE: Input should be 'apigateway' or 'local'"),
    ],
)
def test_settings_errors_name_the_variable_and_the_form(
    monkeypatch: pytest.MonkeyPatch, environment: None, variable: str, value: str | None, expected: str
) -> None:
    from app.settings import SettingsError

    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        get_settings()
    assert expected in str(raised.value)
