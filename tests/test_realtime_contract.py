"""One realtime contract (docs/realtime.md), checked against both paths with the same checks.

- local: `make run`'s /ws (devtools/live.py), through Starlette's TestClient;
- deployed: the WebSocket function ($connect, $default) and the notifier, in process, as the other
  realtime tests run them; the notifier gets the items table's own stream records (read from
  DynamoDB Local as Lambda's event source mapping would hand them over) and posts through moto's
  API Gateway Management API.

Each check runs once per path: the refusals and their bodies, the replies to client messages,
and the change messages' shapes and timestamps.
"""

import base64
import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any, Protocol

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from app import settings
from items_core.messages import INVALID_TOKEN, MAX_CONNECTIONS_PER_OWNER, MISSING_TOKEN, too_many_connections
from items_core.rows import MAX_OWNER_BYTES
from realtime import notifier, websocket
from tests.conftest import TABLE_NAME, LambdaContext
from tests.realtime_fixtures import Issuer, ws_event
from tests.realtime_helpers import receive_within

WHOLE_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
Write = Callable[[], None]


class RealtimePath(Protocol):
    def token(self, owner: str, **claims: Any) -> str: ...

    def handshake(self, token: str | None) -> tuple[int, str]: ...

    def reply(self, message: str | bytes) -> dict[str, Any]: ...

    def changes(self, owner: str, write: Write, count: int) -> list[dict[str, Any]]: ...

    def hold(self, owner: str, stack: ExitStack) -> None: ...


class LocalPath:
    """`make run`'s /ws."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def token(self, owner: str, **claims: Any) -> str:
        from devtools.local_auth import issue_token
        from tests.conftest import LOCAL_SECRET

        return issue_token(LOCAL_SECRET, owner, **claims)

    def handshake(self, token: str | None) -> tuple[int, str]:
        try:
            with self.client.websocket_connect("/ws" + (f"?token={token}" if token is not None else "")):
                return 101, ""
        except WebSocketDenialResponse as refused:
            return refused.status_code, refused.text

    def reply(self, message: str | bytes) -> dict[str, Any]:
        with self.client.websocket_connect(f"/ws?token={self.token('replier')}") as session:
            if isinstance(message, bytes):
                session.send_bytes(message)
            else:
                session.send_text(message)
            return receive_within(session)

    def changes(self, owner: str, write: Write, count: int) -> list[dict[str, Any]]:
        with self.client.websocket_connect(f"/ws?token={self.token(owner)}") as session:
            write()
            return [receive_within(session) for _ in range(count)]

    def hold(self, owner: str, stack: ExitStack) -> None:
        stack.enter_context(self.client.websocket_connect(f"/ws?token={self.token(owner)}"))


class DeployedPath:
    """The WebSocket function and the notifier, fed by the items table's stream."""

    def __init__(self, issuer: Issuer, dynamodb: Any) -> None:
        import boto3

        self.issuer = issuer
        self.dynamodb = dynamodb
        self.streams = boto3.client(
            "dynamodbstreams", endpoint_url=dynamodb.meta.endpoint_url, region_name=dynamodb.meta.region_name
        )
        self.connections = 0

    def token(self, owner: str, **claims: Any) -> str:
        return self.issuer.token(owner, **claims)

    def _connect(self, token: str | None) -> tuple[str, dict[str, Any]]:
        self.connections += 1
        connection_id = f"c{self.connections}"
        return connection_id, websocket.handler(
            ws_event("$connect", connection_id, token=token), LambdaContext()
        )

    def handshake(self, token: str | None) -> tuple[int, str]:
        _connection, answer = self._connect(token)
        return (101, "") if answer["statusCode"] == 200 else (answer["statusCode"], answer.get("body", ""))

    def reply(self, message: str | bytes) -> dict[str, Any]:
        connection, answer = self._connect(self.token("replier"))
        assert answer["statusCode"] == 200
        binary = isinstance(message, bytes)
        body = base64.b64encode(message).decode() if isinstance(message, bytes) else message
        response = websocket.handler(ws_event("ping", connection, body=body, binary=binary), LambdaContext())
        import json

        decoded: dict[str, Any] = json.loads(response["body"])
        return decoded

    def changes(self, owner: str, write: Write, count: int) -> list[dict[str, Any]]:
        from tests.realtime_fixtures import received

        connection, answer = self._connect(self.token(owner))
        assert answer["statusCode"] == 200
        streams = self.streams
        arn = self.dynamodb.describe_table(TableName=TABLE_NAME)["Table"]["LatestStreamArn"]
        shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        iterators = [
            streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST")[
                "ShardIterator"
            ]
            for shard in shards
        ]
        write()
        records = []
        for iterator in iterators:
            for record in streams.get_records(ShardIterator=iterator)["Records"]:
                data = dict(record["dynamodb"])
                # Lambda's event carries epoch seconds (microsecond precision where configured).
                data["ApproximateCreationDateTime"] = (
                    data["ApproximateCreationDateTime"].timestamp() + 0.123456
                )
                records.append({**record, "dynamodb": data})
        assert notifier.handler({"Records": records}, LambdaContext()) == {"batchItemFailures": []}
        return received().get(connection, [])[:count]

    def hold(self, owner: str, stack: ExitStack) -> None:
        _connection, answer = self._connect(self.token(owner))
        assert answer["statusCode"] == 200


@pytest.fixture(params=["local", "deployed"])
def path(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, local_app: FastAPI, dynamodb: Any
) -> Iterator[RealtimePath]:
    if request.param == "local":
        monkeypatch.setenv("LOCAL_REALTIME", "true")
        settings.get_settings.cache_clear()
        with TestClient(local_app, raise_server_exceptions=False) as client:
            yield LocalPath(client)
    else:
        issuer = request.getfixturevalue("issuer")
        request.getfixturevalue("realtime")
        yield DeployedPath(issuer, dynamodb)


@pytest.fixture
def rest(local_app: FastAPI, auth: Any) -> Callable[..., Any]:
    """Writes through the REST API, as the owner's other client would make them."""
    client = TestClient(local_app, raise_server_exceptions=False)  # no lifespan: the REST routes only

    def call(method: str, url: str, owner: str, **kwargs: Any) -> Any:
        response = client.request(method, url, headers=auth(owner), **kwargs)
        assert response.status_code < 300, response.text
        return response

    return call


def test_handshakes_are_refused_with_the_same_status_and_body(path: RealtimePath) -> None:
    assert path.handshake(None) == (401, MISSING_TOKEN)
    for invalid in (
        "not-a-token",
        path.token("alice", exp=int(time.time()) - 60),  # expired
        path.token("alice", token_use="id", scope=None),  # an ID token
        path.token("alice", scope="openid profile"),  # an access token without the API's scope
    ):
        assert path.handshake(invalid) == (401, INVALID_TOKEN)
    status, body = path.handshake(path.token("o" * (MAX_OWNER_BYTES + 1)))
    assert status == 403
    too_long = f"The token's owner claim (sub) is {MAX_OWNER_BYTES + 1} bytes long"
    assert body == f"{too_long}; at most 1024 bytes (UTF-8) can be stored"
    assert path.handshake(path.token("alice")) == (101, "")


def test_an_owner_past_the_connection_limit_is_refused_alike(path: RealtimePath) -> None:
    with ExitStack() as stack:
        for _ in range(MAX_CONNECTIONS_PER_OWNER):
            path.hold("crowd", stack)
        assert path.handshake(path.token("crowd")) == (429, too_many_connections(MAX_CONNECTIONS_PER_OWNER))
        assert path.handshake(path.token("someone-else"))[0] == 101


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        ('{"action": "ping"}', {"type": "pong"}),
        ("not json", {"type": "error", "detail": "message is not valid JSON"}),
        ('{"action": "dance"}', None),
        ("[1, 2]", {"type": "error", "detail": 'message must be a JSON object with a string "action"'}),
        ('{"action": "' + "x" * 5000 + '"}', {"type": "error", "detail": "message is over 4096 bytes"}),
        (b"\x00\x01", {"type": "error", "detail": 'send text messages: JSON such as {"action": "ping"}'}),
    ],
)
def test_client_messages_get_the_same_replies(path: RealtimePath, message: str | bytes, reply: Any) -> None:
    answer = path.reply(message)
    if reply is None:  # an unknown action: an error that names it
        assert answer["type"] == "error"
        assert "dance" in answer["detail"]
    else:
        assert answer == reply


def test_changes_have_the_same_shapes_and_whole_second_timestamps(
    path: RealtimePath, rest: Callable[..., Any]
) -> None:
    created: dict[str, Any] = {}

    def write() -> None:
        created.update(
            rest("POST", "/items", "writer", json={"name": "Lamp", "price": 3, "tags": ["home"]}).json()
        )
        rest("PATCH", f"/items/{created['id']}", "writer", json={"price": 4})
        rest("DELETE", f"/items/{created['id']}", "writer")

    messages = path.changes("writer", write, 3)
    assert [(m["type"], m["id"], m["version"]) for m in messages] == [
        ("item.created", created["id"], 1),
        ("item.updated", created["id"], 2),
        ("item.deleted", created["id"], 3),
    ]
    assert [sorted(m) for m in messages] == [
        ["at", "id", "item", "type", "version"],
        ["at", "id", "item", "type", "version"],
        ["at", "id", "type", "version"],
    ]
    assert messages[0]["item"] == created
    assert messages[1]["item"]["etag"] == f'"{created["id"]}-2"'
    assert all(WHOLE_SECONDS.match(m["at"]) for m in messages), [m["at"] for m in messages]
    assert messages[0]["at"] == created["updated_at"]
