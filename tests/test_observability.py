"""One JSON log line and one EMF metrics record per request; no token, body or raw owner in either."""

import hashlib
import hmac
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app import dependencies, observability, owner_reference
from tests.conftest import LambdaContext, http_api_event, lambda_handler, response_json

Auth = Callable[[str], dict[str, str]]
SECRET_SUB = "sub-7c1e-never-logged"
SECRET_BODY = "body-text-never-logged"


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines the service logger writes, formatted exactly as CloudWatch receives them."""
    buffer = io.StringIO()
    observability.LOG_STREAM.target = buffer

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]

    yield lines
    observability.LOG_STREAM.target = None


def emf_records(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log lines CloudWatch turns into metrics (Embedded Metric Format)."""
    return [line for line in lines if "_aws" in line]


def test_one_line_per_request_with_the_fields_on_call(
    app: FastAPI, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    handler = lambda_handler()
    observability._cold_start = True  # a fresh container
    created = handler(
        http_api_event("POST", "/items", owner=SECRET_SUB, body={"name": "n", "price": 1}), LambdaContext()
    )
    item_id = response_json(created)["id"]
    handler(http_api_event("GET", f"/items/{item_id}", owner=SECRET_SUB), LambdaContext())
    handler(http_api_event("GET", "/nowhere"), LambdaContext())
    requests = [line for line in log_lines() if line["message"] == "request"]
    assert len(requests) == 3
    first, second, unmatched = requests
    assert first["route"] == "/items" and first["status"] == 201 and first["method"] == "POST"  # noqa: PT018
    assert second["route"] == "/items/{item_id}"  # the template, not /items/1
    assert second["status"] == 200
    assert isinstance(second["latency_ms"], float)
    assert second["request_id"] == "apigw-request-id"
    assert second["lambda_request_id"] == "lambda-request-id"
    assert (first["cold_start"], second["cold_start"]) == (True, False)
    assert second["owner_ref"] == owner_reference.owner_reference(SECRET_SUB)
    assert second["owner_ref"] != SECRET_SUB
    assert second["service"] == "items-api"
    assert second["level"] == "INFO"
    assert (unmatched["route"], unmatched["status"], unmatched.get("owner_ref")) == ("unmatched", 404, None)

    records = emf_records(requests)
    assert len(records) == 3
    get = records[1]
    directive = get["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "ItemsApi"
    assert directive["Dimensions"] == [["service", "method", "route"]]
    named = {metric["Name"] for metric in directive["Metrics"]}
    assert named == {"Requests", "Latency", "Errors4xx", "Errors5xx"}
    for name in named:
        assert isinstance(get[name], int | float), name  # every named metric is a key of the line
    assert (get["method"], get["route"]) == ("GET", "/items/{item_id}")
    assert (get["Requests"], get["Errors4xx"], get["Errors5xx"]) == (1, 0, 0)
    assert get["Latency"] == get["latency_ms"]
    assert records[0]["ColdStart"] == 1
    assert "ColdStart" not in get
    assert records[2]["Errors4xx"] == 1


def test_errors_log_the_stack_trace_with_the_same_request_id(
    client: TestClient,
    auth: Auth,
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    from app.dependencies import get_dynamodb_client

    def explode(**_: Any) -> None:
        raise RuntimeError("boom")

    get_dynamodb_client().meta.events.register("before-call.dynamodb.GetItem", explode)
    response = client.get("/items/1", headers=auth("alice"))
    assert response.status_code == 500
    error, request = log_lines()
    assert error["level"] == "ERROR"
    assert "RuntimeError: boom" in json.dumps(error["exception"])
    assert error["request_id"] == request["request_id"] == response.headers["x-request-id"]
    assert request["status"] == 500
    assert request["Errors5xx"] == 1


def test_request_line_reads_like_the_logger_lines_and_survives_a_quieter_log_level(
    client: TestClient,
    auth: Auth,
    log_lines: Callable[[], list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import datetime

    trace_header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", trace_header)
    logger = observability.get_logger()
    logger.setLevel(logging.WARNING)  # POWERTOOLS_LOG_LEVEL=WARNING: the metrics must still flow
    try:
        client.get("/items/1", headers=auth("alice"))
        logger.warning("a diagnostic line")
        logger.info("an info line, below the level")
    finally:
        logger.setLevel(logging.INFO)
    request, warning = log_lines()
    assert request["message"] == "request" and request["status"] == 404  # noqa: PT018
    assert "_aws" in request
    assert warning["message"] == "a diagnostic line"
    shared = {"level", "message", "timestamp", "service", "xray_trace_id"}
    assert shared <= request.keys()
    assert shared <= warning.keys()
    assert request["xray_trace_id"] == warning["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert request["service"] == warning["service"] == "items-api"
    for line in (request, warning):
        assert datetime.fromisoformat(line["timestamp"]).utcoffset() is not None  # RFC 3339, with zone


def test_no_token_body_or_raw_owner_in_any_output(
    client: TestClient,
    auth: Auth,
    log_lines: Callable[[], list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Everything at INFO and above (the level Lambda runs at; botocore's DEBUG
    # wire logs would show bodies and are never switched on in production).
    caplog.set_level(logging.INFO)
    observability.get_logger().setLevel(logging.DEBUG)
    headers = auth(SECRET_SUB)
    token = headers["Authorization"].split()[1]
    body = {"name": SECRET_BODY, "price": 1, "description": SECRET_BODY}
    item = client.post("/items", json=body, headers=headers).json()
    client.patch(f"/items/{item['id']}", json={"description": SECRET_BODY}, headers=headers)
    client.post(
        "/items", json={**body, "price": "bad"}, headers=headers
    )  # 422 echoes input to the client only
    client.get("/items", headers={"Authorization": f"Bearer {token}x"})  # a bad token
    client.post("/items", json=body, headers={**headers, "Idempotency-Key": "k"})
    output = json.dumps(log_lines()) + capsys.readouterr().out + caplog.text
    assert len(log_lines()) >= 5
    observability.get_logger().setLevel(logging.INFO)
    for secret in (token, SECRET_BODY, SECRET_SUB):
        assert secret not in output


def _reference_with_key(monkeypatch: pytest.MonkeyPatch, key: str, owner: str) -> str | None:
    monkeypatch.setenv("CURSOR_SIGNING_KEY", key)
    for cached in (
        dependencies.get_settings,
        dependencies.get_stack_key,
        owner_reference.get_owner_reference_key,
    ):
        cached.cache_clear()
    return owner_reference.owner_reference(owner)


def test_the_owner_reference_is_keyed_with_the_stacks_secret(
    environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the stack's key, a list of candidate owner ids cannot be matched against the logs."""
    key = "a-stack-key-of-at-least-32-bytes-long"
    reference = _reference_with_key(monkeypatch, key, "alice@example.com")
    assert reference == _reference_with_key(monkeypatch, key, "alice@example.com")
    assert reference != _reference_with_key(monkeypatch, key, "bob@example.com")
    assert reference != _reference_with_key(monkeypatch, key.upper(), "alice@example.com")
    assert reference is not None
    assert len(reference) == 16
    # Neither the unkeyed hash the release before logged, nor an HMAC with the cursor key itself.
    assert reference != hashlib.sha256(b"items-api owner:alice@example.com").hexdigest()[:16]
    assert reference != hmac.new(key.encode(), b"alice@example.com", hashlib.sha256).hexdigest()[:16]


def test_the_stacks_secret_is_read_once_per_container_and_its_failure_fails_no_request(
    app: FastAPI, log_lines: Callable[[], list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    arn = secrets.create_secret(Name="cursor", SecretString=json.dumps({"current": "k" * 40}))["ARN"]
    reads: list[str] = []
    real_client = dependencies.aws_client

    def counting_client(service: str, **kwargs: Any) -> Any:
        client = real_client(service, **kwargs)
        if service == "secretsmanager":
            client.meta.events.register("before-call", lambda **_: reads.append(service))
        return client

    monkeypatch.setattr(dependencies, "aws_client", counting_client)
    monkeypatch.setenv("CURSOR_SECRET_ARN", arn + "-missing")
    dependencies.get_settings.cache_clear()
    handler = lambda_handler()
    clock = [1000.0]
    monkeypatch.setattr(owner_reference.time, "monotonic", lambda: clock[0])
    event = http_api_event("GET", "/items/1", owner=SECRET_SUB)  # a read that needs no key
    assert [handler(event, LambdaContext())["statusCode"] for _ in range(3)] == [404] * 3
    lines = log_lines()
    assert [line.get("owner_ref") for line in lines if line["message"] == "request"] == [None] * 3
    assert any(line["message"].startswith("owner_ref left out") for line in lines)
    assert len(reads) == 1  # tried again only after a minute
    # The secret is readable again: the next try, a minute on, reads it once for good.
    monkeypatch.setenv("CURSOR_SECRET_ARN", arn)
    dependencies.get_settings.cache_clear()
    clock[0] += 61
    for _ in range(3):
        handler(event, LambdaContext())
    references = {line.get("owner_ref") for line in log_lines()[len(lines) :] if line["message"] == "request"}
    key = hmac.new(b"k" * 40, b"items-api owner reference", hashlib.sha256).digest()
    assert references == {hmac.new(key, SECRET_SUB.encode(), hashlib.sha256).hexdigest()[:16]}
    assert len(reads) == 2
