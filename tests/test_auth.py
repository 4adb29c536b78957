"""Who may see what: dev tokens of the local app, none in the deployed app, and owner isolation."""

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.auth import owner_from_event
from app.settings import get_settings
from devtools.local_app import local_token_verifier
from devtools.local_auth import ALGORITHM, AUDIENCE, ISSUER, SCOPE, issue_token, verify_token
from devtools.template import REPO_ROOT
from tests.conftest import LOCAL_SECRET

Auth = Callable[[str], dict[str, str]]
ITEM = {"name": "Widget", "price": 1}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def forged(**overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "sub": "alice",
        "token_use": "access",
        "scope": SCOPE,
        **overrides,
    }
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


@pytest.mark.parametrize(
    "claims",
    [
        {"token_use": "id", "scope": None},
        {"scope": None},
        {"scope": "openid profile"},
        {"scope": None, "scp": ["x"]},
    ],
    ids=["id-token", "no-scope", "other-scope", "other-scp"],
)
def test_a_valid_token_without_the_scope_is_403_as_api_gateway_answers_it(
    client: TestClient, claims: dict[str, Any]
) -> None:
    for method, path in ITEM_ROUTES:
        response = client.request(method, path, headers=bearer(forged(**claims)), json={})
        assert response.status_code == 403, (method, path)
        assert "scope items-api/items" in response.json()["detail"]


@pytest.mark.parametrize(
    "claims", [{"scope": None, "scp": SCOPE}, {"scope": [SCOPE]}, {"scope": None, "scp": ["x", SCOPE]}]
)
def test_the_scope_is_read_from_scope_or_scp_as_api_gateway_reads_it(
    client: TestClient, claims: dict[str, Any]
) -> None:
    assert client.get("/items", headers=bearer(forged(**claims))).status_code == 200


def test_owner_claim_is_configurable(monkeypatch: pytest.MonkeyPatch, local_app: FastAPI) -> None:
    monkeypatch.setenv("OWNER_CLAIM", "oid")  # Microsoft Entra ID's immutable object id
    get_settings.cache_clear()
    with TestClient(local_app) as client:
        token = issue_token(LOCAL_SECRET, "7c1e0a52-5ab4-4c4e-9b1f-0d2f4a1c9e77", owner_claim="oid")
        created = client.post("/items", json=ITEM, headers=bearer(token))
        assert created.status_code == 201
        # A token that only has `sub` does not name an owner under this setting.
        assert client.get("/items", headers=bearer(issue_token(LOCAL_SECRET, "alice"))).status_code == 401


@pytest.mark.parametrize("claim", ["email", "preferred_username", "username", "cognito:username", "name"])
def test_owner_claim_cannot_name_a_claim_users_change_or_providers_reuse(
    monkeypatch: pytest.MonkeyPatch, environment: None, claim: str
) -> None:
    # With OWNER_CLAIM=email, a user who set their own email to a victim's read the victim's items.
    from app.settings import SettingsError
    from realtime.settings import RealtimeSettingsError
    from realtime.settings import get_settings as realtime_settings

    monkeypatch.setenv("OWNER_CLAIM", claim)
    monkeypatch.setenv("CONNECTIONS_TABLE_NAME", "connections")
    get_settings.cache_clear()
    realtime_settings.cache_clear()
    with pytest.raises(SettingsError, match="OWNER_CLAIM: Input should be 'sub' or 'oid'"):
        get_settings()
    with pytest.raises(RealtimeSettingsError, match="OWNER_CLAIM: Input should be 'sub' or 'oid'"):
        realtime_settings()
    realtime_settings.cache_clear()


def test_the_deployed_app_never_verifies_bearer_tokens(
    monkeypatch: pytest.MonkeyPatch, local_auth: None, app: FastAPI
) -> None:
    # Without API Gateway's verified claims, no header and no environment can
    # authenticate: the Lambda app is built without a token verifier.
    monkeypatch.setenv("AUTH_MODE", "local")
    with TestClient(app) as client:
        token = issue_token(LOCAL_SECRET, "alice")
        headers = {**bearer(token), "X-Auth-Mode": "local", "Auth-Mode": "local"}
        assert client.get("/items?auth_mode=local", headers=headers).status_code == 401


def test_the_local_verifier_needs_a_strong_secret() -> None:
    with pytest.raises(ValueError, match="LOCAL_JWT_SECRET"):
        local_token_verifier("short")


def test_the_function_imports_without_development_code() -> None:
    # As Lambda imports it: the function folder and the shared layer only.
    # Nothing of devtools (local tokens, /ws) or PyJWT is imported by the handler.
    code = (
        "import sys, app.main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'devtools', 'jwt', 'tests'}))"
    )
    pythonpath = os.pathsep.join(str(REPO_ROOT / part) for part in ("functions/api", "layers/shared"))
    result = subprocess.run(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT / "functions",
        env={**os.environ, "PYTHONPATH": pythonpath},
    )
    assert result.stdout.strip() == "[]"


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
        ("OWNER_CLAIM", "", "OWNER_CLAIM: Input should be 'sub' or 'oid'"),
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


@pytest.mark.parametrize("kind", ["id", "no-scope"])
def test_make_token_issues_the_tokens_the_api_refuses_on_request(
    client: Any, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make token KIND=id|no-scope`: try the 403 locally without crafting a token."""
    from devtools import dev_token
    from devtools.dev_token import issue_local_token
    from tests.conftest import LOCAL_SECRET

    monkeypatch.setattr(dev_token, "local_jwt_secret", lambda: LOCAL_SECRET)  # the suite's key

    token = issue_local_token("alice", kind=kind)
    refused = client.get("/items", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403
    assert "items-api/items" in refused.json()["detail"]
    good = issue_local_token("alice")
    assert client.get("/items", headers={"Authorization": f"Bearer {good}"}).status_code == 200
