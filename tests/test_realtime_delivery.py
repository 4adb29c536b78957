"""Realtime delivery under failure: per-item order, isolated connections, timeouts that fit,
tokens that end connections, a bounded JWKS refresh and a 401 that tells nothing away."""

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from devtools.cfn_rules.deploy_rules import worst_case_seconds
from devtools.template import load_template
from realtime import aws, notifier, settings, tokens, websocket
from tests.conftest import LambdaContext
from tests.realtime_fixtures import (
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

Fault = Callable[[dict[str, Any]], tuple[int, str] | None]


@pytest.fixture
def post_faults(realtime: Any) -> list[Fault]:
    """Faults injected into post_to_connection at the client (botocore's before-call event).

    Each fault sees the call's parameters and answers (HTTP status, error code) or None.
    """
    faults: list[Fault] = []

    def inject(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        call = {"ConnectionId": params["url_path"].rsplit("/", 1)[-1], "Data": params["body"]}
        for fault in faults:
            decided = fault(call)
            if decided is not None:
                status, code = decided
                response = AWSResponse("https://management", status, {}, None)  # type: ignore[arg-type]
                return response, {
                    "Error": {"Code": code, "Message": "injected"},
                    "ResponseMetadata": {"HTTPStatusCode": status},
                }
        return None

    aws.management_api().meta.events.register("before-call.apigatewaymanagementapi.PostToConnection", inject)
    return faults


def _message(data: Any) -> dict[str, Any]:
    raw = data if isinstance(data, bytes) else str(data).encode()
    parsed: dict[str, Any] = json.loads(raw)
    return parsed


def _versions(connection_id: str, item_id: int) -> list[int]:
    return [m["version"] for m in received().get(connection_id, []) if m["id"] == item_id]


def test_a_failed_record_holds_back_the_same_items_later_versions(
    realtime: Any, issuer: Issuer, post_faults: list[Fault]
) -> None:
    connect(issuer, "alice-phone", "alice")
    failing = {"armed": True}

    def management_api_throttles_item_1_version_2(call: dict[str, Any]) -> tuple[int, str] | None:
        message = _message(call["Data"])
        if failing["armed"] and (message["id"], message["version"]) == (1, 2):
            return 429, "LimitExceededException"
        return None

    post_faults.append(management_api_throttles_item_1_version_2)
    batch = {
        "Records": [
            stream_record("MODIFY", item_row("alice", 1, 2), item_row("alice", 1, 1), 101),
            stream_record("MODIFY", item_row("alice", 1, 3), item_row("alice", 1, 2), 102),
            stream_record("INSERT", item_row("alice", 2, 1), None, 103),
        ]
    }
    first = notifier.handler(batch, LambdaContext())
    # v2 failed; v3 of the same item waits for the retry; item 2 went out.
    assert first == {"batchItemFailures": [{"itemIdentifier": "101"}, {"itemIdentifier": "102"}]}
    assert _versions("alice-phone", 1) == []
    assert _versions("alice-phone", 2) == [1]

    failing["armed"] = False
    retry = {"Records": batch["Records"][:2]}  # Lambda retries from the first failed record
    assert notifier.handler(retry, LambdaContext()) == {"batchItemFailures": []}
    assert _versions("alice-phone", 1) == [2, 3]  # never 3 before 2


def test_one_refusing_connection_does_not_fail_the_record(
    realtime: Any, issuer: Issuer, post_faults: list[Fault], capsys: pytest.CaptureFixture[str]
) -> None:
    connect(issuer, "alice-broken", "alice")
    connect(issuer, "alice-phone", "alice")
    post_faults.append(
        lambda call: (403, "ForbiddenException") if call["ConnectionId"] == "alice-broken" else None
    )
    batch = {"Records": [stream_record("INSERT", item_row("alice", n, 1), None, n) for n in (1, 2)]}
    assert notifier.handler(batch, LambdaContext()) == {"batchItemFailures": []}
    assert [m["id"] for m in received()["alice-phone"]] == [1, 2]  # served once each, no re-send
    assert len(connection_rows(realtime)) == 2  # refused is not gone
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [record["ConnectionPostFailures"] for record in emf] in ([2.0], [[2.0]])


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "LimitExceededException"), (500, "InternalServerError"), (503, "ServiceUnavailable")],
)
def test_an_unavailable_management_api_fails_the_record(
    realtime: Any, issuer: Issuer, post_faults: list[Fault], status: int, code: str
) -> None:
    connect(issuer, "alice-phone", "alice")
    post_faults.append(lambda call: (status, code))
    batch = {"Records": [stream_record("INSERT", item_row("alice", 1, 1), None, 7)]}
    assert notifier.handler(batch, LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "7"}]}


def test_expired_tokens_end_their_connections(realtime: Any, issuer: Issuer) -> None:
    now = int(time.time())
    websocket.handler(ws_event("$connect", "old", token=issuer.token("alice", exp=now + 2)), LambdaContext())
    connect(issuer, "fresh", "alice")
    stored = {
        row["connection_id"]["S"]: int(row["token_expires_at"]["N"]) for row in connection_rows(realtime)
    }
    assert stored["old"] == now + 2
    realtime.update_item(  # the token's exp has passed since
        TableName=CONNECTIONS_TABLE,
        Key={"owner": {"S": "alice"}, "connection_id": {"S": "old"}},
        UpdateExpression="SET token_expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(now - 1)}},
    )
    batch = {"Records": [stream_record("INSERT", item_row("alice", 1, 1), None, 1)]}
    assert notifier.handler(batch, LambdaContext()) == {"batchItemFailures": []}
    assert "old" not in received()
    assert [m["id"] for m in received()["fresh"]] == [1]
    assert [row["connection_id"]["S"] for row in connection_rows(realtime)] == ["fresh"]


def test_records_are_retried_rather_than_started_without_time_for_a_call(
    realtime: Any, issuer: Issuer
) -> None:
    connect(issuer, "alice-phone", "alice")

    class AlmostOut(LambdaContext):
        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return int(settings.get_settings().worst_case_call_seconds() * 1000)

    batch = {"Records": [stream_record("INSERT", item_row("alice", 1, 1), None, 9)]}
    assert notifier.handler(batch, AlmostOut()) == {"batchItemFailures": [{"itemIdentifier": "9"}]}
    assert "alice-phone" not in received()


def _function(template: dict[str, Any], handler: str) -> dict[str, Any]:
    functions = [
        r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Function"
    ]
    properties: dict[str, Any] = next(p for p in functions if p["Handler"] == handler)
    return properties


def test_realtime_timeouts_fit_the_functions(realtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    template = load_template()
    monkeypatch.delenv("AWS_READ_TIMEOUT")  # the defaults, as deployed
    settings.get_settings.cache_clear()
    configured = settings.get_settings()  # the template sets none of the retry variables
    for function in ("realtime.websocket.handler", "realtime.notifier.handler"):
        variables = _function(template, function)["Environment"]["Variables"]
        assert not {"AWS_MAX_ATTEMPTS", "AWS_CONNECT_TIMEOUT", "AWS_READ_TIMEOUT", "HTTP_TIMEOUT"} & set(
            variables
        )
    connect_timeout = _function(template, "realtime.websocket.handler")["Timeout"]
    # $connect: discovery and JWKS (each bounded), the owner's count and one PutItem at their worst;
    # API Gateway waits 29 s.
    assert configured.connect_budget_seconds() < connect_timeout < 29
    assert configured.connect_budget_seconds() == 2 * 1.5 + 2 * (2 * (0.5 + 1.0) + 1)
    # The notifier starts no call without a worst case's time left (tested above): its timeout
    # must leave room for a batch's owner lookup and posts to several connections.
    notifier_timeout = _function(template, "realtime.notifier.handler")["Timeout"]
    assert notifier_timeout >= 10 * (configured.worst_case_call_seconds() + notifier._MARGIN_SECONDS)
    # The budgets the template declares for cfn-lint's rule E9005 are these.
    budgets = {
        resource["Properties"]["Handler"]: resource["Metadata"]["RetryBudget"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    realtime_budget = budgets["realtime.websocket.handler"]
    assert worst_case_seconds(realtime_budget) == configured.connect_budget_seconds() + 1
    assert realtime_budget["Calls"][0]["ReadTimeout"] == configured.http_timeout
    notifier_budget = budgets["realtime.notifier.handler"]
    assert worst_case_seconds(notifier_budget) == 10 * configured.worst_case_call_seconds() + 1
    assert notifier_budget["Calls"][0]["MaxAttempts"] == configured.aws_max_attempts


def test_unknown_key_ids_fetch_the_jwks_at_most_once_a_minute(
    realtime: Any, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(issuer, "conn-0", "alice")
    assert issuer.requests.count("/jwks.json") == 1
    for number in range(20):
        forged = _with_kid(issuer, f"forged-{number}")
        response = websocket.handler(ws_event("$connect", f"forged-{number}", token=forged), LambdaContext())
        assert response["statusCode"] == 401
    assert issuer.requests.count("/jwks.json") == 1  # within the cooldown: no refetch at all
    now = tokens.monotonic()
    monkeypatch.setattr(tokens, "monotonic", lambda: now + 61)  # a minute later
    for number in range(5):
        forged = _with_kid(issuer, f"later-{number}")
        websocket.handler(ws_event("$connect", f"later-{number}", token=forged), LambdaContext())
    assert issuer.requests.count("/jwks.json") == 2  # one refresh, then the cooldown again


def _with_kid(issuer: Issuer, kid: str) -> str:
    import jwt

    now = int(time.time())
    claims = {"iss": issuer.url, "aud": "items-api-client", "sub": "mallory", "iat": now, "exp": now + 600}
    claims["scope"] = SCOPE
    return jwt.encode(claims, issuer.key, algorithm="RS256", headers={"kid": kid})


def test_connect_refusals_say_nothing_of_the_check_that_failed(
    realtime: Any, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged: list[dict[str, Any]] = []
    monkeypatch.setattr(websocket.logger, "info", lambda message, extra: logged.append(extra))
    now = int(time.time())
    bodies = set()
    for name, token in {
        "expired": issuer.token(exp=now - 60, iat=now - 660),
        "audience": issuer.token(aud="someone-else"),
        "garbage": "not-a-jwt",
    }.items():
        response = websocket.handler(ws_event("$connect", f"c-{name}", token=token), LambdaContext())
        assert response["statusCode"] == 401
        assert response["headers"]["X-Request-ID"]
        bodies.add(response["body"])
    assert bodies == {websocket.INVALID_TOKEN}
    reasons = [entry["reason"] for entry in logged]
    assert any("Signature has expired" in reason for reason in reasons)  # in the log, for operators
    assert all(entry["status"] == 401 for entry in logged)


def test_one_owners_hundreds_of_slow_connections_delay_no_one_else(
    realtime: Any, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The review's scenario: alice holds 300 connections (recorded before the $connect limit, or by
    # handshakes racing it), each post to them slow; bob's changes in the same batch go out on time,
    # in order, once, and only alice's records are reported failed.
    monkeypatch.setenv("OWNER_FANOUT_SECONDS", "1")
    settings.get_settings.cache_clear()
    expires = str(int(time.time()) + 3600)
    for first in range(0, 300, 25):
        rows = [
            {
                "owner": {"S": "alice"},
                "connection_id": {"S": f"alice-{number:03}"},
                "connected_at": {"N": "0"},
                "expires_at": {"N": expires},
            }
            for number in range(first, first + 25)
        ]
        realtime.batch_write_item(
            RequestItems={CONNECTIONS_TABLE: [{"PutRequest": {"Item": r}} for r in rows]}
        )
    connect(issuer, "bob-phone", "bob")

    def slow_for_alice(params: dict[str, Any], **_: Any) -> None:
        if "alice-" in params["url_path"]:
            time.sleep(0.01)

    aws.management_api().meta.events.register(
        "before-call.apigatewaymanagementapi.PostToConnection", slow_for_alice
    )
    started = time.monotonic()

    class Invocation(LambdaContext):  # 60 s, as the notifier's timeout, counting down
        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return int((60 - (time.monotonic() - started)) * 1000)

    batch = {
        "Records": [
            stream_record("INSERT", item_row("alice", 1, 1), None, 1),
            stream_record("INSERT", item_row("bob", 1, 1), None, 2),
            stream_record("INSERT", item_row("alice", 2, 1), None, 3),
            stream_record("MODIFY", item_row("bob", 1, 2), item_row("bob", 1, 1), 4),
        ]
    }
    first = notifier.handler(batch, Invocation())
    assert first == {"batchItemFailures": [{"itemIdentifier": "1"}, {"itemIdentifier": "3"}]}
    assert _versions("bob-phone", 1) == [1, 2]
    # Lambda retries the batch from its first failed record, bob's records included: they are not
    # sent again.
    notifier.handler(batch, Invocation())
    assert _versions("bob-phone", 1) == [1, 2]
