"""Shared fixtures: DynamoDB Local with the tables of template.yaml, the app, clients and tokens."""

import base64
import copy
import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from moto import mock_aws

from app import dependencies, owner_reference, settings
from devtools import dynamodb_local
from devtools.template import create_table, function_entry, load_template
from items_core.dynamodb_errors import OPERATIONS
from tests.faults import FaultInjector, injected_faults

pytest_plugins = ["tests.realtime_fixtures", "tests.local_server"]

# The dependencies layer ships without pydantic.v1 (layers/dependencies/Makefile prunes it):
# neither has the suite, so the tests run against the layer as it ships.
sys.modules["pydantic.v1"] = None  # type: ignore[assignment]

EVENTS = Path(__file__).parent / "events"
TABLE_NAME = "items-test"
IDEMPOTENCY_TABLE_NAME = "items-test-idempotency"
LOCAL_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


def _clear_caches() -> None:
    settings.get_settings.cache_clear()
    dependencies.get_dynamodb_client.cache_clear()
    dependencies.get_item_store.cache_clear()
    dependencies.get_idempotency_store.cache_clear()
    dependencies.get_layout_reader.cache_clear()
    dependencies.get_single_attempt_client.cache_clear()
    # The botocore session stays for the worker's life: building one costs about as much as a
    # test, and every test's environment gives it the same region and credentials. Each test's
    # clients are its own.
    dependencies.get_stack_key.cache_clear()
    dependencies.get_cursor_signer.cache_clear()
    owner_reference.get_owner_reference_key.cache_clear()
    owner_reference._owner_key_retry_at[0] = 0.0
    dependencies.get_owner_rates.cache_clear()


@pytest.fixture(autouse=True)
def _no_leaked_environment() -> Iterator[None]:
    """A test that changes os.environ without monkeypatch would change every later test in
    its worker (once it switched EMF metrics off for the realtime suite): fail it, and restore."""
    before = dict(os.environ)
    yield
    after = dict(os.environ)
    for name in ("PYTEST_CURRENT_TEST",):  # pytest's own, set for each test phase
        before.pop(name, None)
        after.pop(name, None)
    if after != before:
        for name in after.keys() - before.keys():
            del os.environ[name]
        os.environ.update(before)
        changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
        pytest.fail(f"the test left os.environ changed: {', '.join(changed)}")


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A clean, fake AWS environment; settings and clients are built anew per test."""
    for name in (
        "AWS_PROFILE",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_SAM_LOCAL",
        "DYNAMODB_ENDPOINT_URL",
        "CURSOR_SECRET_ARN",
        "CURSOR_SIGNING_KEY",
        "CURSOR_SIGNING_KEY_PREVIOUS",
        "OWNER_CLAIM",
        "AUTHORIZATION_SCOPE",
        "LOCAL_REALTIME",
        "AUTH_MODE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("TABLE_NAME", TABLE_NAME)
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", IDEMPOTENCY_TABLE_NAME)
    # Every DynamoDB call the suite makes is checked against botocore's model
    # (production skips the check; valid calls are sent byte for byte the same).
    monkeypatch.setenv("AWS_VALIDATE_PARAMS", "true")
    # DynamoDB Local answers in milliseconds, but on a machine busy with the whole suite a
    # reply can take longer than the deployed 0.5 s; timeouts are injected, never waited for.
    monkeypatch.setenv("DYNAMODB_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("DYNAMODB_READ_TIMEOUT", "5")
    monkeypatch.delenv("LOCAL_JWT_SECRET", raising=False)
    # The per-owner rates (app/limits.py) are off, so counted calls are the routes' own;
    # tests/test_owner_limits.py switches them on.
    monkeypatch.setenv("OWNER_READS_PER_SECOND", "0")
    monkeypatch.setenv("OWNER_WRITE_UNITS_PER_SECOND", "0")
    monkeypatch.setenv("OWNER_IDEMPOTENCY_KEYS_PER_HOUR", "0")
    monkeypatch.setenv("OWNER_ITEMS_STORED", "0")
    monkeypatch.delenv("API_BASE_PATH", raising=False)
    _clear_caches()
    yield
    _clear_caches()


@pytest.fixture
def local_auth(monkeypatch: pytest.MonkeyPatch, environment: None) -> None:
    """The dev-token key `make run` sets (its app verifies tokens signed with it)."""
    monkeypatch.setenv("LOCAL_JWT_SECRET", LOCAL_SECRET)


@pytest.fixture(scope="session", autouse=True)
def _shared_service_models() -> Iterator[None]:
    """Every botocore session the suite creates shares one loader of AWS's service models.

    Each test builds its clients anew (as each Lambda container does); parsing DynamoDB's model
    again for each of them would cost the suite minutes.
    """
    import botocore.loaders
    import botocore.session

    loader = botocore.loaders.create_loader()
    original = botocore.session.get_session

    def get_session(env_vars: Any = None) -> Any:
        session = original(env_vars)
        session.register_component("data_loader", loader)
        return session

    botocore.session.get_session = get_session
    yield
    botocore.session.get_session = original


# Words of Python, not of JSON or HTTP, that a 422 must never carry (its `input` echo aside).
PYTHON_WORDS = re.compile(
    r"Decimal|<class|datetime\.|\bb'|dictionary|Value error|Undefined|NoneType|\{'|\bList\b|after validation"
    r"|Expecting|Extra data|Invalid control|Invalid \S*escape"
)
_REFUSED: list[Any] = []


@pytest.fixture(scope="session", autouse=True)
def _record_every_422() -> Iterator[None]:
    """Record the body of every 422 the app's validation handler sends, in every test."""
    from app.routes import errors

    original = errors._validation_failed

    async def recording(request: Any, exc: Exception) -> Any:
        response = await original(request, exc)
        _REFUSED.append(json.loads(bytes(response.body)))
        return response

    errors._validation_failed = recording  # read by create_app, which every test's app comes from
    yield
    errors._validation_failed = original


@pytest.fixture(autouse=True)
def _every_422_in_the_apis_words() -> Iterator[None]:
    """No 422 a test produces speaks Python (a type, a repr) in its messages or context."""
    _REFUSED.clear()
    yield
    from items_core.models import Error

    for body in _REFUSED:
        Error.model_validate(body)  # the one error shape the document declares
        for error in body["detail"]:
            shown = json.dumps({key: value for key, value in error.items() if key != "input"})
            assert not PYTHON_WORDS.search(shown), f"a 422 speaks Python: {shown}"


@pytest.fixture(scope="session")
def dynamodb_server() -> Iterator[dynamodb_local.DynamoDBLocal]:
    """AWS's DynamoDB Local, in memory, one per test process (each xdist worker has its own)."""
    with dynamodb_local.running() as server:
        yield server


@pytest.fixture(scope="session")
def dynamodb_session(dynamodb_server: dynamodb_local.DynamoDBLocal) -> Any:
    """The tests' own client of DynamoDB Local (any credentials do: it keeps one shared database)."""
    return boto3.client(
        "dynamodb",
        endpoint_url=dynamodb_server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


_TABLES = {TABLE_NAME: "ItemsTable", IDEMPOTENCY_TABLE_NAME: "IdempotencyTable"}
# Emptying a table row by row beats dropping and creating it (about 110 ms a test for the
# two) only while it holds few rows.
_MAX_ROWS_TO_EMPTY = 100


def _emptied(client: Any, name: str, keep: dict[str, Any] | None = None) -> bool | None:
    """Delete every row of a table but `keep`; whether `keep` stood there, or None when the table
    holds too many rows to be worth emptying."""
    page = client.scan(TableName=name)
    if "LastEvaluatedKey" in page or len(page["Items"]) > _MAX_ROWS_TO_EMPTY:
        return None
    key_names = ("pk", "sk") if name == TABLE_NAME else ("pk",)
    rows = [{k: row[k] for k in key_names if k in row} for row in page["Items"] if row != keep]
    for start in range(0, len(rows), 25):
        batch = [{"DeleteRequest": {"Key": key}} for key in rows[start : start + 25]]
        unprocessed = client.batch_write_item(RequestItems={name: batch})["UnprocessedItems"]
        if unprocessed:  # DynamoDB Local does not throttle; a partial batch is not worth retrying
            return None
    return keep is not None and keep in page["Items"]


def fresh_tables(client: Any, *, recreate: bool = False) -> None:
    """The items and idempotency tables as template.yaml makes them, empty; every other table dropped.

    Tables of an earlier test are emptied and kept (with the items table's layout row as a new
    table has it), unless `recreate` (a test reading the stream from its start) or they hold many rows.
    """
    from items_core.layout import new_table_row

    existing = set(client.list_tables()["TableNames"])
    for name in existing - _TABLES.keys():
        client.delete_table(TableName=name)
    for name, logical_id in _TABLES.items():
        layout_row = new_table_row() if logical_id == "ItemsTable" else None
        if name in existing and not recreate:
            kept = _emptied(client, name, keep=layout_row)
            if kept is not None:
                if layout_row is not None and not kept:
                    client.put_item(TableName=name, Item=layout_row)
                continue
        if name in existing:
            client.delete_table(TableName=name)
        create_table(client, name, logical_id=logical_id)


@pytest.fixture
def dynamodb(
    environment: None,
    dynamodb_server: dynamodb_local.DynamoDBLocal,
    dynamodb_session: Any,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Any]:
    """DynamoDB Local with the items and idempotency tables of template.yaml, empty (fresh_tables).

    moto stands in for the other AWS services (Secrets Manager, the API Gateway
    Management API, ...); DynamoDB calls go to DynamoDB Local, which moto passes through.
    A test that reads the table's stream from its start is marked `fresh_tables`.
    """
    monkeypatch.setenv("DYNAMODB_ENDPOINT_URL", dynamodb_server.endpoint)
    client = dynamodb_session
    with mock_aws():
        fresh_tables(client, recreate=request.node.get_closest_marker("fresh_tables") is not None)
        yield client


@pytest.fixture
def faults(dynamodb: Any) -> Iterator[FaultInjector]:
    """Per-attempt failures of the app's DynamoDB calls (see tests/faults.py)."""
    with injected_faults(dependencies.get_dynamodb_client()) as injector:
        yield injector


@pytest.fixture
def calls(dynamodb: Any) -> list[str]:
    """Every DynamoDB operation the app's client makes; one outside OPERATIONS (a Scan) fails the test."""
    made: list[str] = []

    def record(model: Any, **_: Any) -> None:
        made.append(model.name)
        assert model.name in OPERATIONS, f"{model.name}: not in items_core.dynamodb_errors.OPERATIONS"

    dependencies.get_dynamodb_client().meta.events.register("before-call.dynamodb", record)
    return made


@pytest.fixture
def app(dynamodb: Any, calls: list[str]) -> FastAPI:
    """The application exactly as the Lambda handler serves it (owners come from API Gateway's claims)."""
    from app.main import app as fastapi_app

    return fastapi_app


@pytest.fixture
def local_app(local_auth: None, dynamodb: Any, calls: list[str]) -> FastAPI:
    """The application as `make run` serves it: the same factory, plus dev-token checks and /ws."""
    from devtools.local_app import create_local_app

    return create_local_app()


@pytest.fixture
def client(local_app: FastAPI) -> Iterator[TestClient]:
    """A TestClient of the local app; send `auth("alice")` as headers."""
    with TestClient(local_app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def auth() -> Callable[[str], dict[str, str]]:
    """Authorization headers with a local-mode token for an owner."""
    from devtools.local_auth import issue_token

    def headers(owner: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(LOCAL_SECRET, owner)}"}

    return headers


@pytest.fixture
def stored(dynamodb: Any) -> Callable[[str, int], dict[str, Any] | None]:
    """The raw DynamoDB attributes of an owner's item, read around the app."""

    def read(owner: str, item_id: int) -> dict[str, Any] | None:
        response = dynamodb.get_item(
            TableName=TABLE_NAME, Key={"pk": {"S": f"OWNER#{owner}"}, "sk": {"N": str(item_id)}}
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    return read


# --- Lambda events -----------------------------------------------------------


def lambda_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The handler named in template.yaml, imported as Lambda imports it."""
    _task_root, handler_path = function_entry(load_template())
    module_name, attribute = handler_path.rsplit(".", 1)
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = getattr(
        importlib.import_module(module_name), attribute
    )
    return handler


class LambdaContext:
    """The few attributes of Lambda's context object that Mangum and the app read."""

    function_name = "ApiFunction"
    aws_request_id = "lambda-request-id"
    memory_limit_in_mb = 512

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


def load_event(name: str) -> dict[str, Any]:
    """A fixture event from tests/events (generated by `sam local generate-event`)."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    return copy.deepcopy(event)


def _encode_body(event: dict[str, Any], body: Any) -> None:
    if body is None:
        event["body"] = None
        event["isBase64Encoded"] = False
    else:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        event["body"] = base64.b64encode(raw).decode()
        event["isBase64Encoded"] = True


def http_api_event(
    method: str,
    path: str,
    *,
    owner: str | None = None,
    body: Any = None,
    query: str = "",
    headers: dict[str, str] | None = None,
    stage: str = "$default",
    template: str = "http-api-v2",
) -> dict[str, Any]:
    """An HTTP API (payload v2) or Function URL event; `path` excludes the stage."""
    event = load_event(template)
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    event["rawPath"] = raw_path
    event["rawQueryString"] = query
    event["queryStringParameters"] = None
    event.pop("cookies", None)
    event["headers"] = {"content-type": "application/json", **(headers or {})}
    context = event["requestContext"]
    context["http"]["method"] = method
    context["http"]["path"] = raw_path
    context["stage"] = stage
    context["requestId"] = "apigw-request-id"
    if owner is None:
        context.pop("authorizer", None)
    else:
        context["authorizer"] = {"jwt": {"claims": {"sub": owner}, "scopes": None}}
    _encode_body(event, body)
    return event


def rest_api_event(
    method: str,
    path: str,
    *,
    owner: str | None = None,
    body: Any = None,
    query: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
    stage: str = "Prod",
) -> dict[str, Any]:
    """A REST API (payload v1) event; Mangum reads the multiValue* fields first, so both are set."""
    event = load_event("rest-api-v1")
    event["httpMethod"] = method
    event["path"] = path
    event["resource"] = "/{proxy+}"
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    all_headers = {
        "Host": "1234567890.execute-api.us-east-1.amazonaws.com",
        "X-Forwarded-Proto": "https",
        "Content-Type": "application/json",
        **(headers or {}),
    }
    event["headers"] = all_headers
    event["multiValueHeaders"] = {name: [value] for name, value in all_headers.items()}
    event["queryStringParameters"] = {k: v[-1] for k, v in query.items()} if query else None
    event["multiValueQueryStringParameters"] = query or None
    context = event["requestContext"]
    context["httpMethod"] = method
    context["stage"] = stage
    context["path"] = f"/{stage}{path}"
    context["requestId"] = "apigw-request-id"
    if owner is None:
        context.pop("authorizer", None)
    else:
        context["authorizer"] = {"claims": {"sub": owner}}
    _encode_body(event, body)
    return event


def alb_event(method: str, path: str, *, body: Any = None) -> dict[str, Any]:
    """An ALB target-group event (no claims, ever)."""
    event = load_event("alb")
    event["httpMethod"] = method
    event["path"] = path
    event["queryStringParameters"] = {}
    _encode_body(event, body)
    return event


def response_json(response: dict[str, Any]) -> Any:
    """The decoded JSON body of a Lambda proxy response."""
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body)


def response_headers(response: dict[str, Any]) -> dict[str, str]:
    """Headers of a v1 or v2 proxy response, lower-cased."""
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ",".join(values)
    return headers
