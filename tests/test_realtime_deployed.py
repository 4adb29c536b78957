"""The deployed realtime path: the WebSocket API's routes and the stream notifier.

DynamoDB is DynamoDB Local; moto stands in for the API Gateway Management API.

WebSocket events follow AWS's documented format (tests/events/websocket-*.json);
stream events start from `sam local generate-event dynamodb update`
(tests/events/dynamodb-update.json). Tokens are RS256, signed by a key of a
local OIDC issuer (discovery document and JWKS served on 127.0.0.1).
"""

import json
import os
import time
from datetime import datetime
from typing import Any
from unittest.mock import ANY

import boto3
import jwt
import pytest
from botocore.stub import Stubber
from cryptography.hazmat.primitives.asymmetric import rsa

from items_core.messages import INVALID_TOKEN, MISSING_TOKEN
from realtime import aws, notifier, settings, websocket
from tests.conftest import (
    TABLE_NAME,
    LambdaContext,
    http_api_event,
    lambda_handler,
    response_json,
)
from tests.realtime_fixtures import (
    AUDIENCE,
    CONNECTIONS_TABLE,
    SCOPE,
    Issuer,
    connect,
    connection_rows,
    item_row,
    received,
    stream_record,
    ws_event,
)

# --- $connect, $disconnect, $default ------------------------------------------------


def test_connect_records_the_owner_with_a_ttl_above_two_hours(realtime: Any, issuer: Issuer) -> None:
    response = websocket.handler(ws_event("$connect", "conn-1", token=issuer.token("alice")), LambdaContext())
    assert response == {"statusCode": 200}
    (row,) = connection_rows(realtime)
    assert (row["owner"]["S"], row["connection_id"]["S"]) == ("alice", "conn-1")
    lifetime = int(row["expires_at"]["N"]) - int(row["connected_at"]["N"])
    assert 2 * 3600 < lifetime <= 3 * 3600


def test_connect_accepts_the_authorization_header(realtime: Any, issuer: Issuer) -> None:
    event = ws_event("$connect", "conn-h", header=f"Bearer {issuer.token('bob')}")
    assert websocket.handler(event, LambdaContext())["statusCode"] == 200
    assert connection_rows(realtime)[0]["owner"]["S"] == "bob"


@pytest.mark.parametrize("slash", ["", "/"], ids=["no trailing slash", "trailing slash"])
def test_the_issuer_is_compared_as_api_gateway_compares_it(
    realtime: Any, issuer: Issuer, monkeypatch: pytest.MonkeyPatch, slash: str
) -> None:
    """JwtIssuer feeds both APIs: `iss` must equal it exactly, a trailing slash included, on both."""
    from tests.realtime_fixtures import _clear

    configured = issuer.url + slash
    monkeypatch.setenv("JWT_ISSUER", configured)
    _clear()
    matching = websocket.handler(
        ws_event("$connect", f"iss{len(slash)}", token=issuer.token("alice", iss=configured)), LambdaContext()
    )
    assert matching["statusCode"] == 200
    other = issuer.url + ("" if slash else "/")  # the same issuer spelled the other way
    refused = websocket.handler(
        ws_event("$connect", f"iss-other{len(slash)}", token=issuer.token("alice", iss=other)),
        LambdaContext(),
    )
    assert (refused["statusCode"], refused["body"]) == (401, INVALID_TOKEN)


def test_cognito_access_token_is_checked_by_client_id(realtime: Any, issuer: Issuer) -> None:
    # Cognito access tokens carry no aud; API Gateway's JWT authorizer checks client_id instead.
    good = issuer.token("carol", aud=None, client_id=AUDIENCE)
    bad = issuer.token("carol", aud=None, client_id="someone-else")
    assert websocket.handler(ws_event("$connect", "c1", token=good), LambdaContext())["statusCode"] == 200
    assert websocket.handler(ws_event("$connect", "c2", token=bad), LambdaContext())["statusCode"] == 401


def _bad_tokens(issuer: Issuer) -> dict[str, str | None]:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    return {
        "missing": None,
        "not a jwt": "not-a-jwt",
        "signed by another key": issuer.token(key=other_key),
        "other audience": issuer.token(aud="someone-else"),
        "other issuer": issuer.token(iss="https://issuer.example"),
        "expired": issuer.token(exp=now - 60, iat=now - 660),
        "no expiry": issuer.token(exp=None),
        "no owner claim": issuer.token(sub=None),
        # An ID token names the user for the client app; it carries no scope.
        "ID token": issuer.token(token_use="id", scope=None),
        "access token without the scope": issuer.token(scope="openid profile"),
        "access token of another scope": issuer.token(scp=["items-api/admin"], scope=None),
        "scope claim of another type": issuer.token(scope={"items-api/items": True}),
        # API Gateway's JWT authorizer accepts RSA PKCS#1 v1.5 signatures only.
        "PS256 by the issuer's own key": jwt.encode(
            {"iss": issuer.url, "aud": AUDIENCE, "sub": "mallory", "exp": now + 600, "scope": SCOPE},
            issuer.key,
            algorithm="PS256",
            headers={"kid": issuer.kid},
        ),
        "not yet valid": issuer.token(nbf=now + 300),
        "issued in the future": issuer.token(iat=now + 300),
        "HS256 with the public key as secret": jwt.encode(
            {"iss": issuer.url, "aud": AUDIENCE, "sub": "mallory", "exp": now + 600},
            "x" * 32,
            algorithm="HS256",
            headers={"kid": issuer.kid},
        ),
    }


def test_missing_or_invalid_tokens_are_refused_with_401_and_nothing_recorded(
    realtime: Any, issuer: Issuer
) -> None:
    for name, token in _bad_tokens(issuer).items():
        response = websocket.handler(ws_event("$connect", f"conn-{name}", token=token), LambdaContext())
        assert response["statusCode"] == 401, name
        # The same bodies as the local /ws (tests/test_realtime_local.py).
        assert response["body"] == (MISSING_TOKEN if name == "missing" else INVALID_TOKEN), name
    assert connection_rows(realtime) == []


def test_scope_may_be_a_scp_list_as_api_gateway_reads_it(realtime: Any, issuer: Issuer) -> None:
    token = issuer.token("dave", scope=None, scp=["other", SCOPE])
    assert websocket.handler(ws_event("$connect", "c-scp", token=token), LambdaContext())["statusCode"] == 200


@pytest.mark.parametrize(
    ("discovery", "fetched"),
    [
        ({"issuer": "https://issuer.example"}, []),  # a document of another issuer
        ({"jwks_uri": "https://keys.example/jwks.json"}, []),  # keys on another host
        ({"jwks_uri": "LOCALHOST"}, []),  # the same server under another host name
        ({"jwks_uri": "SELF/moved-jwks.json"}, ["/moved-jwks.json"]),  # a redirect is not followed
        ({"jwks_uri": "SELF/large-jwks.json"}, ["/large-jwks.json"]),  # larger than 64 KiB
    ],
    ids=["foreign-issuer", "foreign-host", "other-host-name", "redirect", "oversized"],
)
def test_keys_come_only_from_the_issuers_host_unredirected_and_bounded(
    realtime: Any, issuer: Issuer, discovery: dict[str, str], fetched: list[str]
) -> None:
    port = issuer.url.rsplit(":", 1)[1]
    issuer.discovery = {
        name: value.replace("SELF", issuer.url).replace("LOCALHOST", f"http://localhost:{port}/jwks.json")
        for name, value in discovery.items()
    }
    response = websocket.handler(ws_event("$connect", "conn-k", token=issuer.token()), LambdaContext())
    assert response["statusCode"] == 503  # the stack's configuration, not the client's token
    assert issuer.requests == ["/.well-known/openid-configuration", *fetched]
    assert connection_rows(realtime) == []


def test_a_pinned_jwks_url_skips_discovery(
    realtime: Any, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWKS_URL", f"{issuer.url}/jwks.json")
    settings.get_settings.cache_clear()
    websocket.verifier.cache_clear()
    connect(issuer, "conn-p", "alice")
    assert issuer.requests == ["/jwks.json"]


def test_jwks_is_fetched_once_per_container(realtime: Any, issuer: Issuer) -> None:
    for number in range(5):
        connect(issuer, f"conn-{number}", "alice")
    assert issuer.requests == ["/.well-known/openid-configuration", "/jwks.json"]


def test_unreachable_issuer_is_a_503_not_a_401(realtime: Any, issuer: Issuer) -> None:
    token = issuer.token()
    issuer.server.shutdown()
    issuer.server.server_close()
    response = websocket.handler(ws_event("$connect", "conn-1", token=token), LambdaContext())
    assert response["statusCode"] == 503
    assert connection_rows(realtime) == []


def test_an_owner_at_the_connection_limit_is_refused_with_429_and_others_are_not(
    realtime: Any, issuer: Issuer
) -> None:
    from items_core.messages import MAX_CONNECTIONS_PER_OWNER, too_many_connections

    for number in range(MAX_CONNECTIONS_PER_OWNER):
        connect(issuer, f"alice-{number}", "alice")
    one_more = websocket.handler(
        ws_event("$connect", "alice-x", token=issuer.token("alice")), LambdaContext()
    )
    assert one_more["statusCode"] == 429
    assert one_more["body"] == too_many_connections(MAX_CONNECTIONS_PER_OWNER)
    assert len(connection_rows(realtime)) == MAX_CONNECTIONS_PER_OWNER  # nothing recorded
    connect(issuer, "bob-1", "bob")  # another owner is not affected
    # A closed connection frees its place.
    websocket.handler(ws_event("$disconnect", "alice-0"), LambdaContext())
    connect(issuer, "alice-y", "alice")


def test_connections_past_their_expiry_do_not_count(
    realtime: Any, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection whose $disconnect never came is past expires_at before TTL deletes its record.
    monkeypatch.setenv("MAX_CONNECTIONS_PER_OWNER", "2")
    settings.get_settings.cache_clear()
    connect(issuer, "old-1", "alice")
    connect(issuer, "old-2", "alice")
    assert (
        websocket.handler(ws_event("$connect", "new", token=issuer.token("alice")), LambdaContext())[
            "statusCode"
        ]
        == 429
    )
    for row in connection_rows(realtime):
        realtime.update_item(
            TableName=CONNECTIONS_TABLE,
            Key={"owner": row["owner"], "connection_id": row["connection_id"]},
            UpdateExpression="SET expires_at = :past",
            ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
        )
    connect(issuer, "new", "alice")


def test_disconnect_removes_the_connection(realtime: Any, issuer: Issuer) -> None:
    connect(issuer, "conn-1", "alice")
    connect(issuer, "conn-2", "alice")
    assert websocket.handler(ws_event("$disconnect", "conn-1"), LambdaContext()) == {"statusCode": 200}
    assert [row["connection_id"]["S"] for row in connection_rows(realtime)] == ["conn-2"]
    # A repeat (or a connection whose record already expired) is not an error.
    assert websocket.handler(ws_event("$disconnect", "conn-1"), LambdaContext()) == {"statusCode": 200}


@pytest.mark.parametrize(
    ("body", "binary", "expected"),
    [
        ('{"action": "ping"}', False, {"type": "pong"}),
        ("not json", False, {"type": "error", "detail": "message is not valid JSON"}),
        ('{"action": "subscribe"}', False, {"type": "error", "detail": ANY}),
        ('{"action": "ping", "pad": "' + "x" * 4096 + '"}', False, {"type": "error", "detail": ANY}),
        ("eyJhY3Rpb24iOiAicGluZyJ9", True, {"type": "error", "detail": ANY}),
    ],
    ids=["ping", "not-json", "unknown-action", "too-large", "binary"],
)
def test_default_route_answers_through_the_route_response(
    realtime: Any, body: str, binary: bool, expected: dict[str, Any]
) -> None:
    response = websocket.handler(ws_event("$default", "conn-1", body=body, binary=binary), LambdaContext())
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == expected


# --- the notifier --------------------------------------------------------------


def test_notifier_posts_each_change_to_every_connection_of_its_owner_only(
    realtime: Any, issuer: Issuer
) -> None:
    connect(issuer, "alice-phone", "alice")
    connect(issuer, "alice-laptop", "alice")
    connect(issuer, "bob-phone", "bob")
    tombstone = {
        **{k: v for k, v in item_row("alice", 7, 3).items() if k in ("pk", "sk", "write_token")},
        "version": {"N": "3"},
        "updated_at": {"S": "2026-11-26T08:00:09Z"},
        "expires_at": {"N": "1"},
    }
    event = {
        "Records": [
            stream_record("INSERT", item_row("alice", 7, 1), None, 101),
            stream_record("MODIFY", item_row("alice", 7, 2), item_row("alice", 7, 1), 102),
            stream_record("MODIFY", tombstone, item_row("alice", 7, 2), 103),
            stream_record("REMOVE", None, tombstone, 104),  # TTL removing the tombstone: already announced
        ]
    }
    assert notifier.handler(event, LambdaContext()) == {"batchItemFailures": []}
    messages = received()
    assert "bob-phone" not in messages
    assert messages["alice-phone"] == messages["alice-laptop"]
    assert [(m["type"], m["id"], m["version"], m["at"]) for m in messages["alice-phone"]] == [
        ("item.created", 7, 1, "2026-11-26T08:00:01Z"),
        ("item.updated", 7, 2, "2026-11-26T08:00:02Z"),
        ("item.deleted", 7, 3, "2026-11-26T08:00:09Z"),
    ]
    assert messages["alice-phone"][0]["item"] == {
        "id": 7,
        "name": "Lamp",
        "description": None,
        "price": 19.9,
        "quantity": 2,
        "tags": ["home"],
        "version": 1,
        "created_at": "2026-11-26T08:00:00Z",
        "updated_at": "2026-11-26T08:00:01Z",
        "etag": '"7-1"',
    }


def test_counters_tag_copies_and_tombstones_reach_nobody(realtime: Any, issuer: Issuer) -> None:
    connect(issuer, "alice-phone", "alice")
    counter = {"pk": {"S": "OWNER#alice"}, "sk": {"N": "0"}, "last_id": {"N": "1"}}
    tag_copy = {**item_row("alice", 7, 1), "pk": {"S": "TAG#5#alice#home"}}
    tombstone = {"pk": {"S": "DELETED#alice"}, "sk": {"N": "7"}, "write_token": {"S": "t"}}
    event = {
        "Records": [
            stream_record("INSERT", counter, None, 1),
            stream_record("INSERT", tag_copy, None, 2),
            stream_record("REMOVE", None, tag_copy, 3),
            stream_record("INSERT", tombstone, None, 4),
        ]
    }
    assert notifier.handler(event, LambdaContext()) == {"batchItemFailures": []}
    assert received() == {}


def test_gone_connection_is_forgotten(realtime: Any, issuer: Issuer) -> None:
    connect(issuer, "stale", "alice")
    connect(issuer, "live", "alice")
    stubber = Stubber(aws.management_api())
    stubber.add_client_error(
        "post_to_connection",
        service_error_code="GoneException",
        http_status_code=410,
        expected_params={"ConnectionId": "live", "Data": ANY},
    )
    stubber.add_client_error(
        "post_to_connection",
        service_error_code="GoneException",
        http_status_code=410,
        expected_params={"ConnectionId": "stale", "Data": ANY},
    )
    # Connections come back in key order (live, stale); both answered 410.
    with stubber:
        response = notifier.handler(
            {"Records": [stream_record("INSERT", item_row("alice", 1, 1), None, 1)]}, LambdaContext()
        )
    stubber.assert_no_pending_responses()
    assert response == {"batchItemFailures": []}
    assert connection_rows(realtime) == []


def test_poison_record_is_reported_while_the_others_are_delivered(realtime: Any, issuer: Issuer) -> None:
    connect(issuer, "alice-phone", "alice")
    poison = stream_record("INSERT", item_row("alice", 2, 1), None, 202)
    del poison["dynamodb"]["NewImage"]["price"]  # not a row the API writes
    event = {
        "Records": [
            stream_record("INSERT", item_row("alice", 1, 1), None, 201),
            poison,
            stream_record("INSERT", item_row("alice", 3, 1), None, 203),
        ]
    }
    assert notifier.handler(event, LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "202"}]}
    assert [m["id"] for m in received()["alice-phone"]] == [1, 3]


def test_a_failed_post_fails_its_record_for_a_retry(realtime: Any, issuer: Issuer) -> None:
    connect(issuer, "alice-phone", "alice")
    stubber = Stubber(aws.management_api())
    stubber.add_client_error(
        "post_to_connection", service_error_code="LimitExceededException", http_status_code=429
    )
    stubber.add_response("post_to_connection", {})
    event = {"Records": [stream_record("INSERT", item_row("alice", n, 1), None, n) for n in (1, 2)]}
    with stubber:
        response = notifier.handler(event, LambdaContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "1"}]}
    assert len(connection_rows(realtime)) == 1  # throttling is not "gone"


def _lambda_records_from_stream(client: Any) -> list[dict[str, Any]]:
    """The table's stream as Lambda delivers it: DynamoDB Local's GetRecords, with epoch-second timestamps."""
    arn = client.describe_table(TableName=TABLE_NAME)["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams", endpoint_url=os.environ["DYNAMODB_ENDPOINT_URL"])
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )
        records += streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    for record in records:
        stamp = record["dynamodb"]["ApproximateCreationDateTime"]
        assert isinstance(stamp, datetime)
        record["dynamodb"]["ApproximateCreationDateTime"] = stamp.timestamp()
        record["eventSourceARN"] = arn
    return records


@pytest.mark.fresh_tables
def test_end_to_end_changes_through_the_api_reach_the_owner_in_version_order(
    realtime: Any, issuer: Issuer
) -> None:
    connect(issuer, "alice-phone", "alice")
    connect(issuer, "bob-phone", "bob")
    api = lambda_handler()
    created = response_json(
        api(
            http_api_event("POST", "/items", owner="alice", body={"name": "Desk", "price": 120}),
            LambdaContext(),
        )
    )
    item_id = created["id"]
    path = f"/items/{item_id}"
    replaced = response_json(
        api(
            http_api_event(
                "PUT", path, owner="alice", body={"name": "Desk", "price": 99.5, "tags": ["office"]}
            ),
            LambdaContext(),
        )
    )
    patched = response_json(
        api(http_api_event("PATCH", path, owner="alice", body={"quantity": 4}), LambdaContext())
    )
    assert api(http_api_event("DELETE", path, owner="alice"), LambdaContext())["statusCode"] == 204
    api(
        http_api_event("POST", "/items", owner="carol", body={"name": "other owner", "price": 1}),
        LambdaContext(),
    )

    records = _lambda_records_from_stream(realtime)
    assert notifier.handler({"Records": records}, LambdaContext()) == {"batchItemFailures": []}
    messages = received()
    assert set(messages) == {"alice-phone"}  # bob has no changes; carol has no connection
    alice = messages["alice-phone"]
    assert [(m["type"], m["version"]) for m in alice] == [
        ("item.created", 1),
        ("item.updated", 2),
        ("item.updated", 3),
        ("item.deleted", 4),
    ]
    assert [m["item"] for m in alice[:3]] == [created, replaced, patched]
    assert all(m["id"] == item_id for m in alice)


def test_settings_errors_name_the_variable(realtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from realtime.settings import RealtimeSettingsError

    monkeypatch.delenv("JWT_ISSUER")
    settings.get_settings.cache_clear()
    websocket.verifier.cache_clear()
    with pytest.raises(RealtimeSettingsError, match="JWT_ISSUER"):
        websocket.handler(ws_event("$connect", "c1", token="t"), LambdaContext())
    monkeypatch.delenv("CONNECTIONS_TABLE_NAME")
    settings.get_settings.cache_clear()
    with pytest.raises(RealtimeSettingsError, match="CONNECTIONS_TABLE_NAME"):
        websocket.handler(ws_event("$disconnect", "c1"), LambdaContext())


def test_a_pinned_jwks_url_must_be_https(realtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from realtime.settings import RealtimeSettingsError

    monkeypatch.setenv("JWKS_URL", "http://keys.example/jwks.json")
    settings.get_settings.cache_clear()
    with pytest.raises(RealtimeSettingsError, match="JWKS_URL: Value error, must be an https:// URL"):
        settings.get_settings()


def test_each_owners_connections_are_queried_once_per_batch(realtime: Any, issuer: Issuer) -> None:
    connect(issuer, "alice-phone", "alice")
    connect(issuer, "alice-laptop", "alice")
    connect(issuer, "bob-phone", "bob")
    queries: list[str] = []
    aws.dynamodb().meta.events.register(
        "before-parameter-build.dynamodb.Query", lambda params, **_: queries.append(params["TableName"])
    )
    records = [stream_record("INSERT", item_row("alice", n, 1), None, n) for n in (1, 2, 3)]
    records.append(stream_record("INSERT", item_row("bob", 1, 1), None, 4))
    assert notifier.handler({"Records": records}, LambdaContext()) == {"batchItemFailures": []}
    assert len(queries) == 2  # alice once, bob once: not once per record
    messages = received()
    assert [m["id"] for m in messages["alice-laptop"]] == [1, 2, 3]
    assert [m["id"] for m in messages["alice-phone"]] == [1, 2, 3]
    assert [m["id"] for m in messages["bob-phone"]] == [1]


def test_a_gone_connection_is_skipped_for_the_rest_of_the_batch(realtime: Any, issuer: Issuer) -> None:
    connect(issuer, "live", "alice")
    connect(issuer, "stale", "alice")
    stubber = Stubber(aws.management_api())
    stubber.add_response("post_to_connection", {}, {"ConnectionId": "live", "Data": ANY})
    stubber.add_client_error(
        "post_to_connection",
        service_error_code="GoneException",
        http_status_code=410,
        expected_params={"ConnectionId": "stale", "Data": ANY},
    )
    # Record 2 goes to "live" only: "stale" answered 410 for record 1.
    stubber.add_response("post_to_connection", {}, {"ConnectionId": "live", "Data": ANY})
    records = [stream_record("INSERT", item_row("alice", n, 1), None, n) for n in (1, 2)]
    with stubber:
        assert notifier.handler({"Records": records}, LambdaContext()) == {"batchItemFailures": []}
    stubber.assert_no_pending_responses()
    assert [row["connection_id"]["S"] for row in connection_rows(realtime)] == ["live"]
