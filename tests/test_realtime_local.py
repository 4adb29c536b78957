"""`make run`'s /ws: FastAPI's WebSocket route, following DynamoDB Local's stream of the items table."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from app import settings
from items_core.messages import MAX_CLIENT_MESSAGE_BYTES
from tests.realtime_helpers import receive_within

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch, local_app: FastAPI) -> Iterator[TestClient]:
    """The app as `make run` serves it: local tokens, the stream follower running (lifespan)."""
    monkeypatch.setenv("LOCAL_REALTIME", "true")
    settings.get_settings.cache_clear()  # read again, with the variable
    with TestClient(local_app, raise_server_exceptions=False) as test_client:
        yield test_client


def _token(auth: Auth, owner: str) -> str:
    return auth(owner)["Authorization"].split()[1]


def test_owner_receives_created_updated_deleted_in_version_order(live: TestClient, auth: Auth) -> None:
    with live.websocket_connect(f"/ws?token={_token(auth, 'alice')}") as socket:
        created = live.post("/items", json={"name": "Lamp", "price": 19.9}, headers=auth("alice"))
        item_id = created.json()["id"]
        patched = live.patch(f"/items/{item_id}", json={"quantity": 3}, headers=auth("alice"))
        assert live.delete(f"/items/{item_id}", headers=auth("alice")).status_code == 204

        messages = [receive_within(socket) for _ in range(3)]
    assert [(m["type"], m["id"], m["version"]) for m in messages] == [
        ("item.created", item_id, 1),
        ("item.updated", item_id, 2),
        ("item.deleted", item_id, 3),
    ]
    # The item exactly as the REST API returned it; nothing about it on delete.
    assert messages[0]["item"] == created.json()
    assert messages[1]["item"] == patched.json()
    assert "item" not in messages[2]
    assert messages[1]["at"] == patched.json()["updated_at"]
    assert messages[2]["at"].endswith("Z")


def test_another_owner_receives_nothing_of_it(live: TestClient, auth: Auth) -> None:
    with (
        live.websocket_connect(f"/ws?token={_token(auth, 'alice')}") as alice,
        live.websocket_connect("/ws", headers=auth("bob")) as bob,  # the header works as well
    ):
        for name in ("a1", "a2"):
            live.post("/items", json={"name": name, "price": 1}, headers=auth("alice"))
        bobs = live.post("/items", json={"name": "b1", "price": 1}, headers=auth("bob")).json()
        # The stream is followed in order: had alice's changes reached bob, they would come first.
        first_for_bob = receive_within(bob)
        assert (first_for_bob["type"], first_for_bob["item"]) == ("item.created", bobs)
        assert [receive_within(alice)["item"]["name"] for _ in range(2)] == ["a1", "a2"]
        bob.send_json({"action": "ping"})
        assert receive_within(bob) == {"type": "pong"}  # and nothing else was waiting for bob


# The refusals (missing, malformed, forged, expired, scope-less and ID tokens, an owner id too
# long, the connection limit) are checked on both paths in tests/test_realtime_contract.py.


def test_ping_pong_and_errors_keep_the_connection_open(live: TestClient, auth: Auth) -> None:
    cases: list[tuple[Any, str]] = [
        ("not json", "not valid JSON"),
        ('["ping"]', '"action"'),
        ('{"action": 1}', '"action"'),
        ('{"action": "subscribe"}', 'unknown action "subscribe"'),
        ('{"action": "ping", "pad": "' + "x" * MAX_CLIENT_MESSAGE_BYTES + '"}', "over 4096 bytes"),
        (b'{"action": "ping"}', "text messages"),
    ]
    with live.websocket_connect(f"/ws?token={_token(auth, 'alice')}") as socket:
        for message, problem in cases:
            if isinstance(message, bytes):
                socket.send_bytes(message)
            else:
                socket.send_text(message)
            answer = receive_within(socket)
            assert answer["type"] == "error", message
            assert problem in answer["detail"], (message, answer)
        socket.send_json({"action": "ping"})
        assert receive_within(socket) == {"type": "pong"}
        # Still subscribed after all of that.
        live.post("/items", json={"name": "after", "price": 1}, headers=auth("alice"))
        assert receive_within(socket)["type"] == "item.created"


def test_ws_is_refused_where_the_stream_is_not_followed(local_app: FastAPI, auth: Auth) -> None:
    # Without LOCAL_REALTIME, the local app's /ws says so instead of staying silent.
    with (
        TestClient(local_app) as test_client,
        pytest.raises(WebSocketDenialResponse) as refused,
        test_client.websocket_connect(f"/ws?token={_token(auth, 'alice')}"),
    ):
        pass  # pragma: no cover
    assert refused.value.status_code == 503


def test_the_deployed_app_has_no_websocket_route(local_auth: None, app: FastAPI, auth: Auth) -> None:
    # Deployed, API Gateway's WebSocket API serves realtime; the Lambda app never mounts /ws.
    assert all(getattr(route, "path", None) != "/ws" for route in app.routes)
    with (
        TestClient(app) as test_client,
        pytest.raises(WebSocketDisconnect),
        test_client.websocket_connect(f"/ws?token={_token(auth, 'alice')}"),
    ):
        pass  # pragma: no cover


def test_disconnect_unsubscribes(live: TestClient, auth: Auth) -> None:
    app: Any = live.app
    with live.websocket_connect(f"/ws?token={_token(auth, 'alice')}") as socket:
        socket.send_json({"action": "ping"})
        receive_within(socket)
        assert app.state.live_hub._queues.get("alice")
    # The socket is gone: its queue no longer receives changes.
    live.post("/items", json={"name": "x", "price": 1}, headers=auth("alice"))
    assert not app.state.live_hub._queues.get("alice")


def test_follower_keeps_following_after_a_failed_read(live: TestClient, auth: Auth) -> None:
    app: Any = live.app
    failures = iter([RuntimeError("injected: stream read failed")])

    def fail_once(**_: Any) -> None:
        error = next(failures, None)
        if error is not None:
            raise error

    app.state.live_follower.streams.meta.events.register("before-call.dynamodb-streams.GetRecords", fail_once)
    with live.websocket_connect(f"/ws?token={_token(auth, 'alice')}") as socket:
        live.post("/items", json={"name": "after a failure", "price": 1}, headers=auth("alice"))
        message = receive_within(socket)
    assert (message["type"], message["item"]["name"]) == ("item.created", "after a failure")
    assert next(failures, None) is None  # the failure was injected, and survived


@pytest.mark.parametrize("code", ["TrimmedDataAccessException", "ExpiredIteratorException"])
def test_follower_resumes_after_the_last_change_when_its_iterator_is_refused(
    live: TestClient, auth: Auth, code: str
) -> None:
    app: Any = live.app
    streams = app.state.live_follower.streams
    refused: dict[str, Any] = {"armed": False, "iterators": set()}

    def refuse(params: dict[str, Any], **_: Any) -> None:
        # Once armed, the next iterator read and every later read of it are refused, as DynamoDB
        # refuses an iterator past its shard's trim horizon (or an expired one) for good.
        iterator = params["ShardIterator"]
        if refused["armed"]:
            refused["armed"] = False
            refused["iterators"].add(iterator)
        if iterator in refused["iterators"]:
            error = getattr(streams.exceptions, code)
            raise error({"Error": {"Code": code, "Message": "injected"}}, "GetRecords")

    streams.meta.events.register("provide-client-params.dynamodb-streams.GetRecords", refuse)
    with live.websocket_connect(f"/ws?token={_token(auth, 'alice')}") as socket:
        live.post("/items", json={"name": "first", "price": 1}, headers=auth("alice"))
        assert receive_within(socket)["item"]["name"] == "first"
        refused["armed"] = True
        live.post("/items", json={"name": "second", "price": 1}, headers=auth("alice"))
        live.post("/items", json={"name": "third", "price": 1}, headers=auth("alice"))
        names = [receive_within(socket)["item"]["name"] for _ in range(2)]
    assert names == ["second", "third"]  # each once, in order, none lost
    assert refused["iterators"]  # the refusal was injected


def test_an_owner_at_the_connection_limit_is_refused_with_429(live: TestClient, auth: Auth) -> None:
    from contextlib import ExitStack

    from items_core.messages import MAX_CONNECTIONS_PER_OWNER, too_many_connections

    with ExitStack() as open_sockets:
        for _ in range(MAX_CONNECTIONS_PER_OWNER):
            open_sockets.enter_context(live.websocket_connect(f"/ws?token={_token(auth, 'alice')}"))
        with (
            pytest.raises(WebSocketDenialResponse) as refused,
            live.websocket_connect(f"/ws?token={_token(auth, 'alice')}"),
        ):
            pass  # pragma: no cover
        assert refused.value.status_code == 429
        assert refused.value.text == too_many_connections(MAX_CONNECTIONS_PER_OWNER)
        with live.websocket_connect(f"/ws?token={_token(auth, 'bob')}") as bob:
            bob.send_json({"action": "ping"})
            assert receive_within(bob) == {"type": "pong"}
    # Closed sockets free their places.
    with live.websocket_connect(f"/ws?token={_token(auth, 'alice')}") as alice:
        alice.send_json({"action": "ping"})
        assert receive_within(alice) == {"type": "pong"}
