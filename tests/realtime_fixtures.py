"""Fixtures and builders for the realtime tests (a plugin of conftest.py).

WebSocket events follow AWS's documented format (tests/events/websocket-*.json);
stream records start from `sam local generate-event dynamodb update`
(tests/events/dynamodb-update.json). Tokens are RS256, signed by the key of a
local OIDC issuer (discovery document and JWKS served on 127.0.0.1).
"""

import copy
import functools
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.core import DEFAULT_ACCOUNT_ID

from devtools.template import create_table
from items_core.dynamodb_errors import OPERATIONS
from realtime import aws, connections, notifier, settings, websocket
from tests.conftest import LambdaContext, load_event
from tests.realtime_helpers import posted_messages

CONNECTIONS_TABLE = "connections-test"
AUDIENCE = "items-api-client"
SCOPE = "items-api/items"
MANAGEMENT_URL = "https://abcdef123.execute-api.us-east-1.amazonaws.com/live"


@functools.cache
def _issuer_key() -> rsa.RSAPrivateKey:
    """One RSA key per test process: generating one takes a noticeable share of a test."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Issuer:
    """A local OIDC issuer: discovery document, JWKS, and tokens signed with its RSA key."""

    def __init__(self) -> None:
        self.key = _issuer_key()
        self.kid = "test-key-1"
        self.requests: list[str] = []
        self.discovery: dict[str, Any] = {}  # a test's changes to the discovery document
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks.json", **issuer.discovery}
                elif self.path in {"/jwks.json", "/large-jwks.json"}:
                    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(issuer.key.public_key()))
                    body = {"keys": [{**public, "kid": issuer.kid, "use": "sig", "alg": "RS256"}]}
                    if self.path == "/large-jwks.json":
                        body["padding"] = "x" * 70_000
                elif self.path == "/moved-jwks.json":
                    self.send_response(302)
                    self.send_header("Location", f"{issuer.url}/jwks.json")
                    self.end_headers()
                    return
                else:
                    self.send_error(404)
                    return
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll: shutdown() waits for it (0.5 s by default, at every test's teardown).
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def token(self, owner: str = "alice", *, key: Any = None, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": owner,
            "iat": now,
            "exp": now + 600,
            "token_use": "access",
            "scope": f"openid {SCOPE}",
            **overrides,
        }
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    running = Issuer()
    yield running
    running.server.shutdown()
    running.server.server_close()


def _clear() -> None:
    for cached in (
        settings.get_settings,
        aws.dynamodb,
        aws.management_api,
        connections.connection_store,
        websocket.verifier,
        notifier.delivered_records,
    ):
        cached.cache_clear()


@pytest.fixture
def realtime(dynamodb: Any, issuer: Issuer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Both realtime functions configured as template.yaml configures them.

    DynamoDB is DynamoDB Local; moto stands in for the API Gateway Management API.
    """
    create_table(dynamodb, CONNECTIONS_TABLE, logical_id="ConnectionsTable")
    monkeypatch.setenv("CONNECTIONS_TABLE_NAME", CONNECTIONS_TABLE)
    monkeypatch.setenv("JWT_ISSUER", issuer.url)
    monkeypatch.setenv("JWT_AUDIENCE", f"another-client, {AUDIENCE}")
    monkeypatch.setenv("AUTHORIZATION_SCOPE", SCOPE)
    monkeypatch.setenv("WEBSOCKET_MANAGEMENT_URL", MANAGEMENT_URL)
    monkeypatch.delenv("JWKS_URL", raising=False)
    # DynamoDB Local on a machine busy with the whole suite can take longer than the deployed
    # 1 s to answer; timeouts are injected, never waited for. (The notifier's time guard
    # still fits: 2 x (0.5 + 3) + 1 s of backoff and 1 s of margin in a 10 s invocation.)
    monkeypatch.setenv("AWS_READ_TIMEOUT", "3")
    _clear()

    def known_call(model: Any, **_: Any) -> None:
        assert model.name in OPERATIONS, f"{model.name}: not in items_core.dynamodb_errors.OPERATIONS"

    aws.dynamodb().meta.events.register("before-call.dynamodb", known_call)
    yield dynamodb
    _clear()


def ws_event(
    route: str,
    connection_id: str,
    *,
    token: str | None = None,
    header: str | None = None,
    body: str | None = None,
    binary: bool = False,
) -> dict[str, Any]:
    name = {"$connect": "websocket-connect", "$disconnect": "websocket-disconnect"}.get(
        route, "websocket-message"
    )
    event = load_event(name)
    event["requestContext"]["connectionId"] = connection_id
    if token is not None:
        event["queryStringParameters"] = {"token": token}
        event["multiValueQueryStringParameters"] = {"token": [token]}
    if header is not None:
        event["headers"]["Authorization"] = header
    if route not in ("$connect", "$disconnect"):
        event["body"] = body
        event["isBase64Encoded"] = binary
    return event


def connection_rows(client: Any) -> list[dict[str, Any]]:
    # A test-side look at the whole (tiny) table; the functions only ever Query.
    rows: list[dict[str, Any]] = client.scan(TableName=CONNECTIONS_TABLE)["Items"]
    return rows


def connect(issuer: Issuer, connection_id: str, owner: str) -> None:
    response = websocket.handler(
        ws_event("$connect", connection_id, token=issuer.token(owner)), LambdaContext()
    )
    assert response["statusCode"] == 200


def received() -> dict[str, list[dict[str, Any]]]:
    backend = apigatewaymanagementapi_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    return {cid: posted_messages(connection.data) for cid, connection in backend.connections.items()}


def item_row(owner: str, item_id: int, version: int, name: str = "Lamp") -> dict[str, Any]:
    return {
        "pk": {"S": f"OWNER#{owner}"},
        "sk": {"N": str(item_id)},
        "name": {"S": name},
        "name_folded": {"S": name.casefold()},
        "price": {"N": "19.90"},
        "quantity": {"N": "2"},
        "tags": {"L": [{"S": "home"}]},
        "version": {"N": str(version)},
        "created_at": {"S": "2026-11-26T08:00:00Z"},
        "updated_at": {"S": f"2026-11-26T08:00:0{version}Z"},
        "write_token": {"S": "t"},
    }


def stream_record(
    event_name: str, new: dict[str, Any] | None, old: dict[str, Any] | None, sequence: int
) -> dict[str, Any]:
    """A record shaped as `sam local generate-event dynamodb update` shapes one, with our rows."""
    record: dict[str, Any] = copy.deepcopy(load_event("dynamodb-update")["Records"][1])
    record["eventName"] = event_name
    data = record["dynamodb"]
    row = new or old or {}
    data["Keys"] = {"pk": row["pk"], "sk": row["sk"]}
    data["SequenceNumber"] = str(sequence)
    data.pop("NewImage", None)
    data.pop("OldImage", None)
    if new is not None:
        data["NewImage"] = new
    if old is not None:
        data["OldImage"] = old
    return record
