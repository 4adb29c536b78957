"""Where the cursor signing keys come from: Secrets Manager (deployed), a setting, or random (local)."""

import json
from collections.abc import Callable
from typing import Any

import boto3
import botocore.session
import pytest
from fastapi.testclient import TestClient

from app import dependencies
from app.store.cursor import CursorSigner, InvalidCursor, RotatingCursorSigner

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def secret_arn(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    client = boto3.client("secretsmanager")
    arn: str = client.create_secret(
        Name="cursor-keys", SecretString=json.dumps({"current": "c" * 64, "previous": "p" * 64})
    )["ARN"]
    monkeypatch.setenv("CURSOR_SECRET_ARN", arn)
    return arn


def test_cursors_are_signed_with_the_secrets_current_key(secret_arn: str, local_app: Any, auth: Auth) -> None:
    with TestClient(local_app) as client:
        for i in range(3):
            client.post("/items", json={"name": f"n{i}", "price": 1}, headers=auth("alice"))
        first = client.get("/items", params={"limit": 1}, headers=auth("alice")).json()
        second = client.get(
            "/items", params={"limit": 1, "cursor": first["next_cursor"]}, headers=auth("alice")
        )
        assert second.status_code == 200
        # A cursor signed with "previous" (before a rotation) still works.
        old = CursorSigner(b"p" * 64).encode(2, owner="alice", q="", tag="")
        third = client.get("/items", params={"limit": 1, "cursor": old}, headers=auth("alice"))
        assert [item["id"] for item in third.json()["items"]] == [3]
    assert CursorSigner(b"c" * 64).decode(first["next_cursor"], owner="alice", q="", tag="") == 1


def test_secret_is_fetched_once_within_its_time_to_live(secret_arn: str, environment: None) -> None:
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


def test_configured_keys(monkeypatch: pytest.MonkeyPatch, environment: None) -> None:
    monkeypatch.setenv("CURSOR_SIGNING_KEY", "n" * 40)
    monkeypatch.setenv("CURSOR_SIGNING_KEY_PREVIOUS", "o" * 40)
    signer = dependencies.get_cursor_signer()
    old = CursorSigner(b"o" * 40).encode(3, owner="a", q="", tag="")
    assert signer.decode(old, owner="a", q="", tag="") == 3


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


class Container:
    """One Lambda environment's view of the cursor keys: its own cache of the secret, its own clock."""

    def __init__(self, arn: str) -> None:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        self.fetches = 0
        self.now = 1000.0
        client = boto3.client("secretsmanager")
        client.meta.events.register("before-call.secrets-manager.GetSecretValue", self._count)
        self.signer = RotatingCursorSigner(SecretsProvider(boto3_client=client), arn, clock=lambda: self.now)

    def _count(self, **_: Any) -> None:
        self.fetches += 1


def _rotate(arn: str, current: str, previous: str) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=arn, SecretString=json.dumps({"current": current, "previous": previous})
    )


def test_a_warm_container_accepts_cursors_signed_after_a_rotation(secret_arn: str) -> None:
    warm = Container(secret_arn)
    before = warm.signer.encode(7, owner="alice", q="", tag="")  # caches the old keys
    _rotate(secret_arn, current="n" * 64, previous="c" * 64)
    fresh = Container(secret_arn)  # started after the rotation: signs with the new key
    after = fresh.signer.encode(8, owner="alice", q="", tag="")
    assert CursorSigner(b"n" * 64).decode(after, owner="alice", q="", tag="") == 8
    # The warm container's cached keys predate the rotation; it looks again instead of refusing.
    assert warm.signer.decode(after, owner="alice", q="", tag="") == 8
    assert warm.fetches == 2
    # Cursors signed before the rotation still verify everywhere (the old key is now `previous`).
    assert fresh.signer.decode(before, owner="alice", q="", tag="") == 7
    assert warm.signer.decode(before, owner="alice", q="", tag="") == 7


def test_unknown_signatures_refetch_the_secret_at_most_once_a_minute(secret_arn: str) -> None:
    container = Container(secret_arn)
    container.signer.encode(1, owner="a", q="", tag="")
    forged = CursorSigner(b"x" * 64).encode(1, owner="a", q="", tag="")
    for _ in range(10):
        with pytest.raises(InvalidCursor):
            container.signer.decode(forged, owner="a", q="", tag="")
    assert container.fetches == 2  # the first read, and one forced look
    container.now += 61
    with pytest.raises(InvalidCursor):
        container.signer.decode(forged, owner="a", q="", tag="")
    assert container.fetches == 3
