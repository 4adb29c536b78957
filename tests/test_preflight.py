"""The pre-deploy gate, proven by breaking the template on purpose (issue 10).

Each case applies one deliberate breakage to a copy of template.yaml or samconfig.toml and
asserts that `make preflight`'s own checks (devtools/preflight.py: cfn-lint with the custom
rules in devtools/cfn_rules on the SAM-transformed template, and samconfig's parameter values)
fail on it, naming the expected rule; the real template passes. Resources are found by type
and role, not by logical id, so the cases survive renames. All cases run in one process of the
SAM CLI's environment (the SAM translator and cfn-lint load once).
"""

import copy
import json
import os
import subprocess
import tomllib
from collections.abc import Callable
from typing import Any

import pytest

from devtools.template import REPO_ROOT, load_template

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("preflight")]  # one process computes every case

Template = dict[str, Any]
Config = dict[str, Any]
SAM_PYTHON = REPO_ROOT / ".venv-sam" / "bin" / "python"


# --- finding resources by what they do ----------------------------------------


def of_type(template: Template, kind: str) -> dict[str, Any]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def function_with_event(template: Template, event_type: str) -> dict[str, Any]:
    [function] = [
        f
        for f in of_type(template, "AWS::Serverless::Function").values()
        if any(e["Type"] == event_type for e in f["Properties"].get("Events", {}).values())
    ]
    return function


def http_function(template: Template) -> dict[str, Any]:
    return function_with_event(template, "HttpApi")


def stream_function(template: Template) -> dict[str, Any]:
    return function_with_event(template, "DynamoDB")


def websocket_function(template: Template) -> dict[str, Any]:
    [integration] = of_type(template, "AWS::ApiGatewayV2::Integration").values()
    target = str(integration["Properties"]["IntegrationUri"])
    [function] = [f for name, f in of_type(template, "AWS::Serverless::Function").items() if name in target]
    return function


def stream_role(template: Template) -> dict[str, Any]:
    role = stream_function(template)["Properties"]["Role"]
    name = role["Fn::GetAtt"].split(".")[0] if isinstance(role["Fn::GetAtt"], str) else role["Fn::GetAtt"][0]
    resource: dict[str, Any] = template["Resources"][name]
    return resource


def role_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    return statements


def only(template: Template, kind: str) -> dict[str, Any]:
    [resource] = of_type(template, kind).values()
    return resource


def math_alarm(template: Template) -> dict[str, Any]:
    return next(
        a for a in of_type(template, "AWS::CloudWatch::Alarm").values() if "Metrics" in a["Properties"]
    )


def websocket_stage(template: Template) -> dict[str, Any]:
    return only(template, "AWS::ApiGatewayV2::Stage")


def unconditional_access_logs(template: Template) -> None:
    properties = websocket_stage(template)["Properties"]
    properties["AccessLogSettings"] = properties["AccessLogSettings"]["Fn::If"][1]


def set_override(config: Config, environment: str, name: str, value: str) -> None:
    parameters = config[environment]["deploy"]["parameters"]
    parameters["parameter_overrides"] = f"{parameters.get('parameter_overrides', '')} {name}={value}".strip()


# --- the breakages --------------------------------------------------------------

Breakage = Callable[[Template, Config], None]


def _env(template: Template, name: str, value: Any) -> None:
    http_function(template)["Properties"]["Environment"]["Variables"][name] = value


def _table(template: Template) -> tuple[str, dict[str, Any]]:
    return next(
        (n, t)
        for n, t in of_type(template, "AWS::DynamoDB::Table").items()
        if "StreamSpecification" in t["Properties"]
    )


def _circular(template: Template, config: Config) -> None:
    _name, table = _table(template)
    function_name = next(
        n for n, f in of_type(template, "AWS::Serverless::Function").items() if f is http_function(template)
    )
    table["DependsOn"] = [function_name]  # the function already refers to the table


def _drop_stream_read(template: Template, config: Config) -> None:
    statements = role_statements(stream_role(template))
    statements[:] = [s for s in statements if "dynamodb:GetRecords" not in s["Action"]]


def _drop_destination_send(template: Template, config: Config) -> None:
    statements = role_statements(stream_role(template))
    statements[:] = [s for s in statements if "sqs:SendMessage" not in s["Action"]]


def _trust_ec2(template: Template, config: Config) -> None:
    trust = stream_role(template)["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    trust["Principal"] = {"Service": "ec2.amazonaws.com"}


def _managed_key(template: Template, config: Config) -> None:
    only(template, "AWS::SNS::Topic")["Properties"]["KmsMasterKeyId"] = "alias/aws/sns"


def _key_without_cloudwatch(template: Template, config: Config) -> None:
    policy = only(template, "AWS::KMS::Key")["Properties"]["KeyPolicy"]
    policy["Statement"] = [s for s in policy["Statement"] if "cloudwatch" not in str(s.get("Principal"))]


def _topic_policy_without_cloudwatch(template: Template, config: Config) -> None:
    [statement] = only(template, "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]["Statement"]
    statement["Principal"] = {"Service": "events.amazonaws.com"}


def _logs_without_account(template: Template, config: Config) -> None:
    unconditional_access_logs(template)
    for name in list(of_type(template, "AWS::ApiGateway::Account")):
        del template["Resources"][name]
    websocket_stage(template).pop("Metadata", None)


def _logs_before_account(template: Template, config: Config) -> None:
    unconditional_access_logs(template)
    websocket_stage(template)["Metadata"].pop("LoggingRoleSetBy")


def _any_method(template: Template, config: Config) -> None:
    events = http_function(template)["Properties"]["Events"]
    event = next(e for e in events.values() if e["Properties"].get("Method") == "GET")
    path = event["Properties"]["Path"]
    for name in [n for n, e in events.items() if e["Properties"].get("Method") == "ANY"]:
        if events[name]["Properties"]["Path"] == path:  # the path's unauthorized ANY goes
            del events[name]
    event["Properties"]["Method"] = "ANY"


def _public_event(template: Template, **properties: Any) -> None:
    [api] = of_type(template, "AWS::Serverless::HttpApi")
    events = http_function(template)["Properties"]["Events"]
    events["Everything"] = {"Type": "HttpApi", "Properties": {"ApiId": {"Ref": api}, **properties}}


def _authorized_default_route(template: Template, config: Config) -> None:
    _public_event(template)  # no Path: the $default route, under the default authorizer


def log_group_of(template: Template, settings: dict[str, Any]) -> dict[str, Any]:
    """The template's log group an AccessLogSettings sends to (!GetAtt Group.Arn)."""
    target = settings["DestinationArn"]["Fn::GetAtt"]
    group: dict[str, Any] = template["Resources"][
        target[0] if isinstance(target, list) else target.split(".")[0]
    ]
    return group


def _http_access_logs_generated_name(template: Template, config: Config) -> None:
    [api] = of_type(template, "AWS::Serverless::HttpApi").values()
    log_group_of(template, api["Properties"]["AccessLogSettings"])["Properties"].pop("LogGroupName")


def _websocket_access_logs_elsewhere(template: Template, config: Config) -> None:
    settings = websocket_stage(template)["Properties"]["AccessLogSettings"]["Fn::If"][1]
    group = log_group_of(template, settings)
    group["Properties"]["LogGroupName"] = {"Fn::Sub": "/aws/apigateway/${AWS::StackName}-access"}


def _role_with_another_boundary(template: Template, config: Config) -> None:
    [role] = [r for r in of_type(template, "AWS::IAM::Role").values() if "Condition" not in r]
    role["Properties"]["PermissionsBoundary"] = "arn:aws:iam::aws:policy/AdministratorAccess"


def _unconditional_account_setting(template: Template, config: Config) -> None:
    for resource in of_type(template, "AWS::ApiGateway::Account").values():
        resource.pop("Condition")


def _scopeless_route(template: Template, config: Config) -> None:
    # SAM reads an empty AuthorizationScopes as "the authorizer's"; a second authorizer without any is how
    # one route loses the scope.
    [api] = of_type(template, "AWS::Serverless::HttpApi").values()
    authorizers = api["Properties"]["Auth"]["Authorizers"]
    [jwt] = authorizers.values()
    authorizers["AnyTokenAuthorizer"] = {k: v for k, v in jwt.items() if k != "AuthorizationScopes"}
    event = next(
        e for e in http_function(template)["Properties"]["Events"].values() if "Path" in e["Properties"]
    )
    event["Properties"]["Auth"] = {"Authorizer": "AnyTokenAuthorizer"}


def _scopeless_authorizer(template: Template, config: Config) -> None:
    authorizers = of_type(template, "AWS::Serverless::HttpApi")
    [api] = authorizers.values()
    for authorizer in api["Properties"]["Auth"]["Authorizers"].values():
        authorizer.pop("AuthorizationScopes", None)


def _api_timeout_30(template: Template, config: Config) -> None:
    http_function(template)["Properties"]["Timeout"] = 30


def _notifier_timeout_too_short(template: Template, config: Config) -> None:
    stream_function(template)["Properties"]["Timeout"] = 5


def _no_retry_budget(template: Template, config: Config) -> None:
    websocket_function(template)["Metadata"].pop("RetryBudget")


def _shared_reserved_concurrency(template: Template, config: Config) -> None:
    api = http_function(template)["Properties"]["ReservedConcurrentExecutions"]
    websocket_function(template)["Properties"]["ReservedConcurrentExecutions"] = copy.deepcopy(api)


def _unguarded_snapstart(template: Template, config: Config) -> None:
    http_function(template)["Properties"]["SnapStart"] = {"ApplyOn": "PublishedVersions"}


def _unknown_metric_id(template: Template, config: Config) -> None:
    metrics = math_alarm(template)["Properties"]["Metrics"]
    expression = next(m for m in metrics if "Expression" in m)
    expression["Expression"] = expression["Expression"] + " + missing"


def _two_returning_metrics(template: Template, config: Config) -> None:
    metrics = math_alarm(template)["Properties"]["Metrics"]
    next(m for m in metrics if "MetricStat" in m)["ReturnData"] = True


BREAKAGES: dict[str, tuple[Breakage, str]] = {
    # cfn-lint's own rules, on what CloudFormation receives
    "ref-to-missing-resource": (lambda t, c: _env(t, "BROKEN", {"Ref": "NoSuchTable"}), "E1020"),
    "getatt-unknown-attribute": (
        lambda t, c: _env(t, "BROKEN", {"Fn::GetAtt": [_table(t)[0], "NoSuchAttribute"]}),
        "E1010",
    ),
    "circular-dependency": (_circular, "E3004"),
    "unknown-runtime": (lambda t, c: t["Globals"]["Function"].__setitem__("Runtime", "python3.99"), "E3030"),
    "enum-violation": (
        lambda t, c: _table(t)[1]["Properties"].__setitem__("BillingMode", "PAY_AS_YOU_GO"),
        "E3030",
    ),
    "type-violation": (lambda t, c: t["Globals"]["Function"].__setitem__("MemorySize", "lots"), "E3012"),
    "iam-syntax": (
        lambda t, c: http_function(t)["Properties"]["Policies"][0]["Statement"][0].__setitem__(
            "Effect", "Permit"
        ),
        "E3510",
    ),
    # the custom rules (devtools/cfn_rules/deploy_rules.py)
    "alarm-topic-with-aws-managed-key": (_managed_key, "E9001"),
    "alarm-key-without-cloudwatch": (_key_without_cloudwatch, "E9001"),
    "topic-policy-without-cloudwatch": (_topic_policy_without_cloudwatch, "E9001"),
    "access-logs-without-account-role": (_logs_without_account, "E9002"),
    "access-logs-before-account-role": (_logs_before_account, "E9002"),
    "authorized-any-route-with-cors": (_any_method, "E9003"),
    "authorized-default-route-with-cors": (_authorized_default_route, "E9003"),
    "stream-read-not-granted": (_drop_stream_read, "E9004"),
    "destination-send-not-granted": (_drop_destination_send, "E9004"),
    "local-token-check-switched-on": (lambda t, c: _env(t, "AWS_SAM_LOCAL", "true"), "E9011"),
    "local-token-key-deployed": (lambda t, c: _env(t, "LOCAL_JWT_SECRET", "k" * 40), "E9011"),
    "local-token-key-from-a-parameter": (
        lambda t, c: _env(t, "LOCAL_JWT_SECRET", {"Fn::If": ["SnapStartEnabled", "", {"Ref": "LogLevel"}]}),
        "E9011",
    ),
    "layer-named-after-its-logical-id": (
        lambda t, c: t["Resources"]["SharedLayer"]["Properties"].pop("LayerName"),
        "E9012",
    ),
    "layer-with-a-fixed-name": (
        lambda t, c: t["Resources"]["DependenciesLayer"]["Properties"].__setitem__("LayerName", "deps"),
        "E9012",
    ),
    "route-without-scope": (_scopeless_route, "E9010"),
    "unauthenticated-default-route": (lambda t, c: _public_event(t, Auth={"Authorizer": "NONE"}), "E9013"),
    "unauthenticated-greedy-route": (
        lambda t, c: _public_event(t, Path="/{proxy+}", Method="ANY", Auth={"Authorizer": "NONE"}),
        "E9013",
    ),
    "http-access-logs-to-a-generated-group-name": (_http_access_logs_generated_name, "E9014"),
    "websocket-access-logs-outside-vendedlogs": (_websocket_access_logs_elsewhere, "E9014"),
    "function-roles-without-boundary": (
        lambda t, c: t["Globals"]["Function"].pop("PermissionsBoundary"),
        "E9015",
    ),
    "role-with-another-boundary": (_role_with_another_boundary, "E9015"),
    "account-setting-in-every-stack": (_unconditional_account_setting, "E9016"),
    "authorizer-without-scope": (_scopeless_authorizer, "E9010"),
    "api-function-timeout-at-the-limit": (_api_timeout_30, "E9005"),
    "timeout-below-the-retry-budget": (_notifier_timeout_too_short, "E9005"),
    "no-retry-budget-declared": (_no_retry_budget, "E9005"),
    "reserved-concurrency-shared": (_shared_reserved_concurrency, "E9006"),
    "snapstart-without-parameter": (_unguarded_snapstart, "E9007"),
    "metric-math-unknown-id": (_unknown_metric_id, "E9008"),
    "metric-math-two-results": (_two_returning_metrics, "E9008"),
    "role-trusts-another-service": (_trust_ec2, "E9009"),
    # samconfig's values against the template's constraints
    "samconfig-value-not-allowed": (
        lambda t, c: set_override(c, "prod", "ApiGatewayLogging", "sometimes"),
        "P9001",
    ),
    "samconfig-unknown-parameter": (lambda t, c: set_override(c, "staging", "NoSuchParameter", "1"), "P9001"),
    "samconfig-number-out-of-range": (lambda t, c: set_override(c, "prod", "LogRetentionDays", "0"), "P9001"),
    "reservations-beyond-a-default-account": (
        lambda t, c: (
            set_override(c, "prod", "ApiReservedConcurrency", "800"),
            set_override(c, "prod", "NotifierReservedConcurrency", "200"),
        ),
        "W9003",
    ),
    "owner-claim-users-can-change": (lambda t, c: set_override(c, "prod", "OwnerClaim", "email"), "P9001"),
    "cors-any-origin": (
        lambda t, c: set_override(c, "staging", "CorsAllowedOrigins", "https://a.example,*"),
        "P9002",
    ),
    "required-parameter-not-provided": (
        lambda t, c: t["Metadata"]["Preflight"].__setitem__("GuidedParameters", []),
        "P9001",
    ),
}


@pytest.fixture(scope="module")
def outcomes() -> dict[str, list[list[str]]]:
    """Every case, checked in one process of the SAM CLI's environment."""
    template = load_template()
    config = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    cases = {"unbroken": {"template": template, "samconfig": config}}
    for name, (breakage, _rule) in BREAKAGES.items():
        broken_template, broken_config = copy.deepcopy(template), copy.deepcopy(config)
        breakage(broken_template, broken_config)
        cases[name] = {"template": broken_template, "samconfig": broken_config}
    result = subprocess.run(  # noqa: S603 - the SAM CLI's interpreter, fixed module
        [str(SAM_PYTHON), "-m", "devtools.preflight", "--batch"],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": "layers/shared"},  # as make preflight runs it
        timeout=600,
    )
    found: dict[str, list[list[str]]] = json.loads(result.stdout)
    return found


def test_the_real_template_and_samconfig_pass(outcomes: dict[str, list[list[str]]]) -> None:
    assert outcomes["unbroken"] == []


def test_there_are_at_least_twenty_breakages() -> None:
    assert len(BREAKAGES) >= 20
    custom = {rule for _breakage, rule in BREAKAGES.values() if rule.startswith("E9")}
    assert custom == {f"E90{n:02}" for n in range(1, 17)}  # every custom rule is proven


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_each_breakage_fails_the_gate_naming_its_rule(
    outcomes: dict[str, list[list[str]]], case: str
) -> None:
    rules = {rule for rule, _message in outcomes[case]}
    assert BREAKAGES[case][1] in rules, outcomes[case]


@pytest.mark.parametrize(
    ("metrics", "problem"),
    [
        (
            [
                {"Id": "a", "Expression": "100 * b / 1e3", "ReturnData": True},
                {"Id": "b", "ReturnData": False},
            ],
            None,
        ),
        ([{"Id": "q", "Expression": 'SELECT AVG(Latency) FROM SCHEMA("AWS/ApiGateway")'}], None),
        ([{"Id": "e", "Expression": 'SUM(METRICS("op"))'}, {"Id": "opGet", "ReturnData": False}], None),
        (
            [{"Id": "e", "Expression": 'SUM(METRICS("op"))'}, {"Id": "get", "ReturnData": False}],
            "matches no metric id",
        ),
        (
            [{"Id": "a", "Expression": "b + gone"}, {"Id": "b", "ReturnData": False}],
            "'gone', which is no metric id",
        ),
        ([{"Id": "Upper"}], "must start with a lowercase letter"),
        ([{"Id": "a"}, {"Id": "a", "ReturnData": False}], "must be unique"),
        ([{"Id": "a"}, {"Id": "b"}], "exactly one metric must have ReturnData true (2 do)"),
    ],
)
def test_metric_math_rule_reads_expressions_as_cloudwatch_does(
    metrics: list[dict[str, Any]], problem: str | None
) -> None:
    from devtools.cfn_rules.deploy_rules import metric_math_problems

    found = metric_math_problems(metrics)
    if problem is None:
        assert found == []
    else:
        assert any(problem in message for message in found), found


def test_reservations_up_to_a_default_accounts_room_pass_and_beyond_it_warn() -> None:
    """900 of a default 1,000-execution account may be reserved (Lambda keeps 100 unreserved)."""
    from devtools.preflight import concurrency_warnings

    template = load_template()
    config = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    assert concurrency_warnings(template, config) == []
    set_override(config, "staging", "ApiReservedConcurrency", "900")
    assert concurrency_warnings(template, config) == []
    set_override(config, "staging", "RealtimeReservedConcurrency", "1")
    (warning,) = concurrency_warnings(template, config)
    assert warning[0] == "W9003"
    assert "samconfig [staging] reserves 901" in warning[1]
    assert "at most 900" in warning[1]
