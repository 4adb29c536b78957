"""template.yaml's realtime resources: the WebSocket API, both functions, stream wiring, least privilege."""

import ast
from pathlib import Path
from typing import Any

import pytest

from devtools.template import REPO_ROOT, load_template
from realtime import aws, notifier, websocket
from tests.conftest import LambdaContext
from tests.realtime_fixtures import CONNECTIONS_TABLE, Issuer, connect, item_row, stream_record, ws_event


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources(template: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"]
    return found


def test_websocket_api_routes_all_reach_the_realtime_function(template: dict[str, Any]) -> None:
    r = resources(template)
    assert r["WebSocketApi"]["Properties"]["ProtocolType"] == "WEBSOCKET"
    routes = {
        res["Properties"]["RouteKey"]: res["Properties"]
        for res in r.values()
        if res["Type"] == "AWS::ApiGatewayV2::Route"
    }
    assert set(routes) == {"$connect", "$disconnect", "$default"}
    for route in routes.values():
        assert route["ApiId"] == {"Ref": "WebSocketApi"}
        assert route["Target"] == {"Fn::Sub": "integrations/${WebSocketIntegration}"}
    # $default answers through a route response (so the function needs no ManageConnections).
    assert routes["$default"]["RouteResponseSelectionExpression"] == "$default"
    assert r["DefaultRouteResponse"]["Properties"]["RouteId"] == {"Ref": "DefaultRoute"}
    integration = r["WebSocketIntegration"]["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert "${RealtimeFunction.Arn}" in integration["IntegrationUri"]["Fn::Sub"]
    assert r["RealtimeFunction"]["Properties"]["Handler"] == "realtime.websocket.handler"
    permission = r["RealtimeInvokePermission"]["Properties"]
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert "${WebSocketApi}/*" in permission["SourceArn"]["Fn::Sub"]
    stage = r["WebSocketStage"]["Properties"]
    condition, logs, off = stage["AccessLogSettings"]["Fn::If"]  # ApiGatewayLogging=off: none
    assert (condition, off) == ("WebSocketAccessLogs", {"Ref": "AWS::NoValue"})
    assert logs["DestinationArn"] == {"Fn::GetAtt": "WebSocketAccessLogGroup.Arn"}
    assert "ThrottlingRateLimit" in stage["DefaultRouteSettings"]
    url = template["Outputs"]["WebSocketUrl"]["Value"]["Fn::Sub"]
    assert url.startswith("wss://${WebSocketApi}.execute-api.")
    assert url.endswith("/${WebSocketStage}")


def test_connect_verifies_against_the_http_apis_issuer_and_audience(template: dict[str, Any]) -> None:
    r = resources(template)
    authorizer = r["HttpApi"]["Properties"]["Auth"]["Authorizers"]["JwtAuthorizer"]["JwtConfiguration"]
    variables = r["RealtimeFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["JWT_ISSUER"] == authorizer["issuer"] == {"Ref": "JwtIssuer"}
    assert variables["JWT_AUDIENCE"] == {"Fn::Join": [",", authorizer["audience"]]}
    assert variables["OWNER_CLAIM"] == {"Ref": "OwnerClaim"}


def test_connections_table_has_ttl_and_an_index_for_disconnect(template: dict[str, Any]) -> None:
    table = resources(template)["ConnectionsTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["owner", "connection_id"]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by-connection"
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}


def test_stream_wiring_reports_partial_failures_with_bounded_retries_and_a_queue(
    template: dict[str, Any],
) -> None:
    r = resources(template)
    function = r["NotifierFunction"]["Properties"]
    assert function["Handler"] == "realtime.notifier.handler"
    (event,) = function["Events"].values()
    assert event["Type"] == "DynamoDB"
    source = event["Properties"]
    assert source["Stream"] == {"Fn::GetAtt": "ItemsTable.StreamArn"}
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 0 < source["MaximumRetryAttempts"] <= 10
    assert source["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": "NotifierFailureQueue.Arn"},
    }
    assert '"prefix": "OWNER#"' in source["FilterCriteria"]["Filters"][0]["Pattern"]


def _statements(template: dict[str, Any], function: str) -> list[dict[str, Any]]:
    properties = resources(template)[function]["Properties"]
    if "Role" in properties:
        role = resources(template)[properties["Role"]["Fn::GetAtt"].split(".")[0]]["Properties"]
        (policy,) = role["Policies"]
        statements: list[dict[str, Any]] = policy["PolicyDocument"]["Statement"]
        return statements
    (policy,) = properties["Policies"]
    return list(policy["Statement"])


def _granted(statements: list[dict[str, Any]], prefix: str) -> set[str]:
    return {action for s in statements for action in s["Action"] if action.startswith(prefix)}


@pytest.fixture
def recorded(realtime: Any) -> list[str]:
    """Every DynamoDB and Management API operation the realtime code makes."""
    made: list[str] = []

    def record(model: Any, **_: Any) -> None:
        made.append(f"{model.service_model.endpoint_prefix}:{model.name}")

    aws.dynamodb().meta.events.register("before-parameter-build", record)
    aws.management_api().meta.events.register("before-parameter-build", record)
    return made


def test_realtime_function_is_granted_exactly_what_it_calls(
    template: dict[str, Any], recorded: list[str], issuer: Issuer
) -> None:
    connect(issuer, "c1", "alice")
    websocket.handler(ws_event("$default", "c1", body='{"action": "ping"}'), LambdaContext())
    websocket.handler(ws_event("$disconnect", "c1"), LambdaContext())
    statements = _statements(template, "RealtimeFunction")
    assert set(recorded) == _granted(statements, "dynamodb:")
    assert _granted(statements, "execute-api:") == set()  # answers through the route response
    index = {"Fn::Sub": "${ConnectionsTable.Arn}/index/by-connection"}
    assert [s["Action"] for s in statements if s["Resource"] == index] == [["dynamodb:Query"]]


def test_notifier_is_granted_exactly_what_it_calls(
    template: dict[str, Any], recorded: list[str], issuer: Issuer, realtime: Any
) -> None:
    connect(issuer, "c1", "alice")
    # A connection whose token has expired: the notifier closes it (DeleteConnection).
    connect(issuer, "c0", "alice")
    realtime.update_item(
        TableName=CONNECTIONS_TABLE,
        Key={"owner": {"S": "alice"}, "connection_id": {"S": "c0"}},
        UpdateExpression="SET token_expires_at = :past",
        ExpressionAttributeValues={":past": {"N": "1"}},
    )
    recorded.clear()
    from botocore.stub import Stubber

    stubber = Stubber(aws.management_api())
    stubber.add_response("delete_connection", {})
    stubber.add_response("post_to_connection", {})
    stubber.add_client_error("post_to_connection", service_error_code="GoneException", http_status_code=410)
    with stubber:
        event = {"Records": [stream_record("INSERT", item_row("alice", n, 1), None, n) for n in (1, 2)]}
        notifier.handler(event, LambdaContext())
    statements = _statements(template, "NotifierFunction")
    data_plane = {call for call in recorded if call.startswith("dynamodb:")}
    stream_read = {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    }  # Lambda's event source mapping reads the stream for it
    assert data_plane | stream_read == _granted(statements, "dynamodb:")
    assert {"execute-api:PostToConnection", "execute-api:DeleteConnection"} <= set(recorded)
    manage = [s for s in statements if s["Action"] == ["execute-api:ManageConnections"]]
    assert [resource["Fn::Sub"].rsplit(":", 1)[1] for resource in manage[0]["Resource"]] == [
        "${WebSocketApi}/live/POST/@connections/*",
        "${WebSocketApi}/live/DELETE/@connections/*",
    ]
    # Nothing else: only ListStreams (which has no resource-level form) names every resource.
    assert [s["Action"] for s in statements if s["Resource"] == "*"] == [["dynamodb:ListStreams"]]
    assert {s["Resource"]["Fn::GetAtt"] for s in statements if "Fn::GetAtt" in str(s["Resource"])} == {
        "NotifierFunctionLogGroup.Arn",
        "ItemsTable.StreamArn",
        "ConnectionsTable.Arn",
        "NotifierFailureQueue.Arn",
    }


def test_every_function_shares_one_items_core_through_the_layer(template: dict[str, Any]) -> None:
    r = resources(template)
    for name in ("ApiFunction", "RealtimeFunction", "NotifierFunction"):
        assert {"Ref": "SharedLayer"} in r[name]["Properties"]["Layers"], name
    assert r["SharedLayer"]["Metadata"]["BuildMethod"] == "makefile"
    assert "build-SharedLayer:" in (REPO_ROOT / "layers/shared/Makefile").read_text()
    for target in ("build-RealtimeFunction:", "build-NotifierFunction:"):
        assert target in (REPO_ROOT / "functions/realtime/Makefile").read_text()


def _imports_and_path_edits(root: Path) -> tuple[set[str], list[str]]:
    imported: set[str] = set()
    edits: list[str] = []
    for source in root.rglob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif (
                isinstance(node, ast.Attribute)
                and node.attr == "path"
                and getattr(node.value, "id", "") == "sys"
            ):
                edits.append(str(source.relative_to(REPO_ROOT)))
    return imported, edits


def test_model_and_messages_are_defined_once_and_imported_without_path_edits() -> None:
    for root in ("functions/api/app", "functions/realtime/realtime", "layers/shared/items_core"):
        _, edits = _imports_and_path_edits(REPO_ROOT / root)
        assert edits == [], root
    assert "items_core" in _imports_and_path_edits(REPO_ROOT / "functions/api/app")[0]
    assert "items_core" in _imports_and_path_edits(REPO_ROOT / "functions/realtime/realtime")[0]
    definitions = [
        str(source.relative_to(REPO_ROOT))
        for base in ("functions", "layers")
        for source in (REPO_ROOT / base).rglob("*.py")
        if "class ItemPublic(" in source.read_text(encoding="utf-8")
        or "class ItemChange(" in source.read_text(encoding="utf-8")
    ]
    assert sorted(definitions) == [
        "layers/shared/items_core/messages.py",
        "layers/shared/items_core/models.py",
    ]
