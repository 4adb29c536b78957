"""Where the cursor key comes from: the stack's secret (read once per container), a setting, or random."""

import json
from collections.abc import Callable
from typing import Any

import boto3
import botocore.session
import pytest
from fastapi.testclient import TestClient

from app import dependencies
from app.store.cursor import CursorSigner

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def secret_arn(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    # The layout template.yaml's CursorSigningSecret generates (and earlier releases wrote).
    client = boto3.client("secretsmanager")
    arn: str = client.create_secret(
        Name="cursor-keys", SecretString=json.dumps({"current": "c" * 64, "previous": ""})
    )["ARN"]
    monkeypatch.setenv("CURSOR_SECRET_ARN", arn)
    return arn


def test_cursors_are_signed_with_the_stacks_key(secret_arn: str, local_app: Any, auth: Auth) -> None:
    with TestClient(local_app) as client:
        for i in range(3):
            client.post("/items", json={"name": f"n{i}", "price": 1}, headers=auth("alice"))
        first = client.get("/items", params={"limit": 1}, headers=auth("alice")).json()
        second = client.get(
            "/items", params={"limit": 1, "cursor": first["next_cursor"]}, headers=auth("alice")
        )
        assert second.status_code == 200
        # After the key changed (and a deploy replaced the containers), an old cursor is a 422.
        old = CursorSigner(b"o" * 64).encode(2, owner="alice", q="", tag="")
        refused = client.get("/items", params={"limit": 1, "cursor": old}, headers=auth("alice"))
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["query", "cursor"]
    assert CursorSigner(b"c" * 64).decode(first["next_cursor"], owner="alice", q="", tag="") == 1


def test_the_secret_is_read_once_per_container(secret_arn: str, environment: None) -> None:
    calls: list[str] = []
    original_create = botocore.session.Session.create_client

    def create_client(self: Any, service: str, *args: Any, **kwargs: Any) -> Any:
        made = original_create(self, service, *args, **kwargs)
        if service == "secretsmanager":
            made.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
        return made

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
    try:
        dependencies.get_cursor_signer.cache_clear()
        for after in range(1, 6):
            dependencies.get_cursor_signer().encode(after, owner="a", q="", tag="")
    finally:
        botocore.session.Session.create_client = original_create  # type: ignore[method-assign]
    assert calls == ["GetSecretValue"]


def test_a_configured_key(monkeypatch: pytest.MonkeyPatch, environment: None) -> None:
    monkeypatch.setenv("CURSOR_SIGNING_KEY", "n" * 40)
    cursor = CursorSigner(b"n" * 40).encode(3, owner="a", q="", tag="")
    assert dependencies.get_cursor_signer().decode(cursor, owner="a", q="", tag="") == 3


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CursorSigner(b"short")


def test_make_runs_cursor_key_is_kept_per_checkout(
    monkeypatch: pytest.MonkeyPatch, local_app: Any, auth: Auth
) -> None:
    """A reload of `make run` (a new process) still accepts the cursors the last one signed."""
    from app import dependencies, settings
    from devtools.local_env import local_environment

    first, second = local_environment("http://a"), local_environment("http://b")
    assert first["CURSOR_SIGNING_KEY"] == second["CURSOR_SIGNING_KEY"]
    assert len(first["CURSOR_SIGNING_KEY"]) >= 32
    monkeypatch.setenv("CURSOR_SIGNING_KEY", first["CURSOR_SIGNING_KEY"])
    settings.get_settings.cache_clear()
    dependencies.get_cursor_signer.cache_clear()
    with TestClient(local_app) as client:
        for name in ("a", "b"):
            client.post("/items", json={"name": name, "price": 1}, headers=auth("alice"))
        cursor = client.get("/items?limit=1", headers=auth("alice")).json()["next_cursor"]
        dependencies.get_cursor_signer.cache_clear()  # what a reload does: a new process
        settings.get_settings.cache_clear()
        page = client.get("/items", params={"limit": 1, "cursor": cursor}, headers=auth("alice"))
    assert page.status_code == 200, page.text
    assert [item["name"] for item in page.json()["items"]] == ["b"]
