"""template.yaml and samconfig.toml: the deployed shape that the code relies on."""

import json
import tomllib
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import dependencies
from devtools.template import REPO_ROOT, function_entry, load_template, table_definition
from tests.conftest import IDEMPOTENCY_TABLE_NAME, TABLE_NAME
from upgrade.backfill import reset


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources_of(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_function_runtime_and_timeout(template: dict[str, Any]) -> None:
    function = template["Globals"]["Function"]
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Timeout"] < 30  # API Gateway's integration limit
    task_root, handler = function_entry(template)
    assert (task_root / "app" / "main.py").is_file()
    assert handler == "app.main.handler"


def test_layer_is_built_for_the_runtime(template: dict[str, Any]) -> None:
    layer = template["Resources"]["DependenciesLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert template["Resources"]["ApiFunction"]["Metadata"]["BuildMethod"] == "makefile"
    assert "build-DependenciesLayer:" in (REPO_ROOT / "layers/dependencies/Makefile").read_text()
    assert "build-ApiFunction:" in (REPO_ROOT / "functions/api/Makefile").read_text()
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    content = REPO_ROOT / layer["Properties"]["ContentUri"] / "requirements.txt"
    assert content.read_text().strip() == "-r ../../requirements.txt"
    function = template["Resources"]["ApiFunction"]["Properties"]
    assert function["Layers"] == [{"Ref": "DependenciesLayer"}, {"Ref": "SharedLayer"}]
    # The function ships only its own code: third-party packages live in the layer.
    assert not (REPO_ROOT / function["CodeUri"] / "requirements.txt").exists()


def test_items_table_on_demand_with_its_change_stream(template: dict[str, Any]) -> None:
    tables = resources_of(template, "AWS::DynamoDB::Table")
    assert set(tables) == {"ItemsTable", "IdempotencyTable", "ConnectionsTable"}
    assert all(t["Properties"]["BillingMode"] == "PAY_PER_REQUEST" for t in tables.values())
    table = tables["ItemsTable"]
    assert table["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["DeletionPolicy"] == "Retain"
    assert table_definition(template)["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    # Idempotency records: their own table, expiring, feeding no stream.
    keys = tables["IdempotencyTable"]["Properties"]
    assert keys["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert keys["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert "StreamSpecification" not in keys
    assert keys["SSESpecification"] == {"SSEEnabled": False}  # the AWS owned key, as its skip comment says
    variables = template["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["IDEMPOTENCY_TABLE_NAME"] == {"Ref": "IdempotencyTable"}


_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def record_iam_actions() -> dict[str, set[str]]:
    """IAM actions the app's client needs, by table: a transaction needs those of its parts."""
    needed: dict[str, set[str]] = {}

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "TransactWriteItems":
            for entry in params["TransactItems"]:
                [(kind, action)] = entry.items()
                needed.setdefault(action["TableName"], set()).add(f"dynamodb:{_TRANSACT_ACTIONS[kind]}")
        else:
            needed.setdefault(params["TableName"], set()).add(f"dynamodb:{model.name}")

    dependencies.get_dynamodb_client().meta.events.register("provide-client-params.dynamodb", record)
    return needed


def test_items_routes_use_the_jwt_authorizer(template: dict[str, Any]) -> None:
    api = template["Resources"]["HttpApi"]["Properties"]["Auth"]
    assert api["DefaultAuthorizer"] == "JwtAuthorizer"
    jwt = api["Authorizers"]["JwtAuthorizer"]["JwtConfiguration"]
    assert jwt == {"issuer": {"Ref": "JwtIssuer"}, "audience": {"Ref": "JwtAudience"}}
    # Every route of the authorizer requires the scope, which ID tokens never carry (rule E9010
    # checks the transformed routes).
    assert api["Authorizers"]["JwtAuthorizer"]["AuthorizationScopes"] == [{"Ref": "AuthorizationScope"}]
    events = template["Resources"]["ApiFunction"]["Properties"]["Events"]
    routes = {(e["Properties"]["Path"], e["Properties"]["Method"]): e["Properties"] for e in events.values()}
    authorized = {route for route, properties in routes.items() if "Auth" not in properties}
    methods = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
    assert {(path, method) for path, method in authorized} == {
        *(("/items", m) for m in ("GET", "HEAD", "POST")),
        *(("/items/{item_id}", m) for m in methods - {"POST"}),
    }
    public = {route for route in routes if route not in authorized}
    assert all(routes[route]["Auth"] == {"Authorizer": "NONE"} for route in public)
    assert public == {(path, "ANY") for path in PUBLIC_PATHS | {"/items", "/items/{item_id}"}}


# What the app serves without a token; deployed, each is its own route (no $default, E9013).
PUBLIC_PATHS = {"/health", "/openapi.json", "/docs", "/redoc", "/docs/assets/{name}"}


def test_every_path_the_app_serves_has_a_route(template: dict[str, Any], client: TestClient) -> None:
    """A public page without a route would be API Gateway's 404 deployed."""
    events = template["Resources"]["ApiFunction"]["Properties"]["Events"].values()
    routed = {e["Properties"]["Path"] for e in events}
    assert set(client.app.openapi()["paths"]) <= routed  # type: ignore[attr-defined]
    for path in PUBLIC_PATHS:
        served = client.get(path.replace("{name}", "favicon-32x32.png"))
        assert served.status_code == 200, path
    assert client.get("/no-such-page").status_code == 404  # and nothing else is served


def test_iam_grants_exactly_the_calls_the_app_makes(
    template: dict[str, Any],
    dynamodb: Any,
    client: TestClient,
    auth: Callable[[str], dict[str, str]],
    calls: list[str],
) -> None:
    # Drive every route and path through the store (untagged and tagged items, a
    # listing that spends its budget), record each call's table and IAM actions,
    # and compare with the policy.
    needed = record_iam_actions()
    headers = auth("alice")
    for number in range(250):
        client.post(
            "/items",
            json={"name": f"n{number}", "price": 1, "tags": ["t"] if number == 0 else []},
            headers=headers,
        )
    item = client.post("/items", json={"name": "n", "price": 1}, headers=headers).json()
    path = f"/items/{item['id']}"
    client.get(path, headers=headers)
    assert client.get("/items", params={"q": "zzz"}, headers=headers).json()["next_cursor"]  # budget spent
    client.get("/items", params={"q": "n", "tag": "t"}, headers=headers)
    client.put(path, json={"name": "m", "price": 2, "tags": ["a"]}, headers=headers)
    client.patch(path, json={"quantity": 2}, headers=headers)
    client.patch(path, json={"tags": []}, headers=headers)
    client.patch(path, json={}, headers=headers)
    client.delete(path, headers=headers)
    client.delete(path, headers=headers)
    client.delete("/items/1", headers=headers)  # tagged
    # An idempotent request that fails with a 500 gives its key back (DeleteItem).
    failures = iter([RuntimeError("injected")])

    def fail_once(**_: Any) -> None:
        error = next(failures, None)
        if error:
            raise error

    dependencies.get_dynamodb_client().meta.events.register("before-call.dynamodb.UpdateItem", fail_once)
    keyed = {**headers, "Idempotency-Key": "k-1"}
    assert client.post("/items", json={"name": "n", "price": 1}, headers=keyed).status_code == 500
    assert client.post("/items", json={"name": "n", "price": 1}, headers=keyed).status_code == 201
    # For a day after an upgrade, a claim also checks the release before's record (ConditionCheckItem).
    reset(dynamodb, TABLE_NAME)
    dependencies.get_layout_reader.cache_clear()
    dependencies.get_item_store.cache_clear()
    keyed = {**headers, "Idempotency-Key": "k-2"}
    assert client.post("/items", json={"name": "n", "price": 1}, headers=keyed).status_code == 201

    policies = template["Resources"]["ApiFunction"]["Properties"]["Policies"]
    assert len(policies) == 1
    table, keys, secret = policies[0]["Statement"]
    assert table["Effect"] == keys["Effect"] == "Allow"
    assert table["Resource"] == {"Fn::GetAtt": "ItemsTable.Arn"}
    assert set(table["Action"]) == needed[TABLE_NAME]
    assert keys["Resource"] == {"Fn::GetAtt": "IdempotencyTable.Arn"}
    assert (
        set(keys["Action"])
        == needed[IDEMPOTENCY_TABLE_NAME]
        == {
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        }
    )
    assert set(needed) == {TABLE_NAME, IDEMPOTENCY_TABLE_NAME}
    assert "Scan" not in calls
    # The cursor keys: read-only, this one secret.
    assert secret == {
        "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue"],
        "Resource": {"Ref": "CursorSigningSecret"},
    }


def test_outputs(template: dict[str, Any]) -> None:
    assert {"ApiUrl", "TableName"} <= set(template["Outputs"])


def test_samconfig_has_dev_and_prod() -> None:
    config = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text())
    assert (
        config["default"]["global"]["parameters"]["stack_name"]
        != config["prod"]["global"]["parameters"]["stack_name"]
    )
    assert config["prod"]["deploy"]["parameters"]["confirm_changeset"] is True
    assert config["default"]["build"]["parameters"].get("use_container") in (None, False)


def test_operability_hardening(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    table = resources["ItemsTable"]
    assert table["UpdateReplacePolicy"] == "Retain"
    # Protected everywhere but in the pipeline's pull-request stacks (whose cleanup deletes it).
    assert table["Properties"]["DeletionProtectionEnabled"] == {"Fn::If": ["IsEphemeral", False, True]}
    assert template["Parameters"]["EphemeralStack"]["Default"] == "false"
    assert table["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    # Every table uses the AWS owned key, on purpose (no KMS charge): SSEEnabled false says so.
    for name in ("ItemsTable", "IdempotencyTable", "ConnectionsTable"):
        assert resources[name]["Properties"]["SSESpecification"] == {"SSEEnabled": False}
        skip = resources[name]["Metadata"]["checkov"]["skip"]
        assert any(s["id"] == "CKV_AWS_119" and "AWS owned key" in s["comment"] for s in skip)
    for name in ("ApiAccessLogGroup", "ApiFunctionLogGroup"):
        assert resources[name]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    api = resources["HttpApi"]["Properties"]
    assert api["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": "ApiAccessLogGroup.Arn"}
    access_format = json.loads(api["AccessLogSettings"]["Format"])
    assert {"requestId", "status", "latencyMs", "routeKey"} <= set(access_format)
    assert api["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ThrottlingBurstLimit"},
    }
    cors = api["CorsConfiguration"]["Fn::If"][1]
    assert cors["AllowCredentials"] is False
    assert cors["AllowOrigins"] == {"Ref": "CorsAllowedOrigins"}
    assert "*" not in str(template["Parameters"]["CorsAllowedOrigins"].get("Default"))
    function = resources["ApiFunction"]["Properties"]
    assert function["Tracing"] == "Active"
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": "ApiFunctionLogGroup"}
    assert function["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    assert "ReservedConcurrentExecutions" in function


def test_alarms_cover_the_failure_modes_and_notify(template: dict[str, Any]) -> None:
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    assert set(alarms) == {
        "Api5xxRateAlarm",
        "LambdaErrorsAlarm",
        "LambdaThrottlesAlarm",
        "DynamoDBThrottlesAlarm",
        "DynamoDBSystemErrorsAlarm",
        "LatencyP99Alarm",
        "NotifierIteratorAgeAlarm",
        "NotifierFailuresAlarm",
        "NotifierConnectionFailuresAlarm",
        "UpgradeErrorsAlarm",
        "BackfillStalledAlarm",
    }
    topic = {"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [topic], name
    system_errors = alarms["DynamoDBSystemErrorsAlarm"]["Properties"]["Metrics"]
    operations = {
        (
            m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"],
            m["MetricStat"]["Metric"]["Dimensions"][1]["Value"],
        )
        for m in system_errors
        if "MetricStat" in m
    }
    # Every operation the API calls, on each table (SystemErrors is counted per API operation).
    assert operations == {
        ("ItemsTable", "GetItem"),
        ("ItemsTable", "PutItem"),
        ("ItemsTable", "UpdateItem"),
        ("ItemsTable", "TransactWriteItems"),
        ("ItemsTable", "Query"),
        ("IdempotencyTable", "PutItem"),
        ("IdempotencyTable", "UpdateItem"),
        ("IdempotencyTable", "DeleteItem"),
    }


def test_owner_claim_is_limited_to_what_the_functions_accept(template: dict[str, Any]) -> None:
    from typing import get_args

    from items_core.bearer import OwnerClaim

    parameter = template["Parameters"]["OwnerClaim"]
    assert parameter["Default"] == "sub"
    assert parameter["AllowedValues"] == list(get_args(OwnerClaim))


def test_both_apis_require_the_same_scope(template: dict[str, Any]) -> None:
    from devtools.local_auth import SCOPE

    variables = template["Resources"]["RealtimeFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["AUTHORIZATION_SCOPE"] == {"Ref": "AuthorizationScope"}
    assert template["Parameters"]["AuthorizationScope"]["Default"] == SCOPE  # make token's scope


def test_each_stack_publishes_its_own_layers(template: dict[str, Any]) -> None:
    """Without a name, every stack in the account would publish to one layer per logical id (E9012)."""
    for name in ("DependenciesLayer", "SharedLayer"):
        layer_name = template["Resources"][name]["Properties"]["LayerName"]
        separator, (stack, suffix) = layer_name["Fn::Join"]
        assert (separator, stack) == ("-", {"Ref": "AWS::StackName"})
        assert suffix in {"dependencies", "shared"}
