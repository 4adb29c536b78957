"""AWS rules no linter checks, on template.yaml and samconfig.toml: what breaks a real deployment.

Each test names what AWS would do if it failed (docs/deploy.md, "Deploys right the first time").
"""

import re
import tomllib
from typing import Any

import pytest

from devtools.preflight import parameter_problems
from devtools.template import REPO_ROOT, load_template
from tests.test_template import resources_of as _of_type


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_no_authorized_route_can_match_a_cors_preflight(template: dict[str, Any]) -> None:
    # API Gateway: a preflight (OPTIONS, no token) matched by a route with the JWT authorizer is
    # answered 401, and every cross-origin call fails. Only unauthorized routes may match OPTIONS.
    assert template["Resources"]["HttpApi"]["Properties"]["Auth"]["DefaultAuthorizer"]
    for function in _of_type(template, "AWS::Serverless::Function").values():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] != "HttpApi":
                continue
            properties = event["Properties"]
            authorized = properties.get("Auth", {}).get("Authorizer") != "NONE"
            method = str(properties.get("Method", "ANY")).upper()
            if authorized:
                assert method not in {"ANY", "OPTIONS", "X-AMAZON-APIGATEWAY-ANY-METHOD"}, properties


def test_reserved_concurrency_is_set_per_function(template: dict[str, Any]) -> None:
    # One value for several functions reserves it for each (and ties the notifier to the API).
    parameters = []
    for name, function in _of_type(template, "AWS::Serverless::Function").items():
        reserved = function["Properties"].get("ReservedConcurrentExecutions")
        assert reserved is not None, name
        referenced = re.findall(r"'Ref': '(\w+ReservedConcurrency)'", str(reserved))
        assert len(set(referenced)) == 1, (name, reserved)
        parameters.append(referenced[0])
    assert len(parameters) == len(set(parameters)), parameters


def test_alarms_can_reach_their_topic(template: dict[str, Any]) -> None:
    # CloudWatch publishes to an encrypted topic only when the key policy lets it use the key;
    # the AWS managed alias/aws/sns cannot grant that, so alarms would notify nobody.
    resources = template["Resources"]
    topic = resources["AlarmTopic"]["Properties"]
    key_id = topic.get("KmsMasterKeyId")
    assert key_id == {"Ref": "AlarmTopicKey"}
    key_policy = resources["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in key_policy if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch[0]["Action"])
    assert resources["AlarmTopicKey"]["Properties"]["EnableKeyRotation"] is True
    topic_policy = resources["AlarmTopicPolicy"]["Properties"]
    assert topic_policy["Topics"] == [{"Ref": "AlarmTopic"}]
    [publish] = topic_policy["PolicyDocument"]["Statement"]
    assert (publish["Principal"], publish["Action"]) == (
        {"Service": "cloudwatch.amazonaws.com"},
        "sns:Publish",
    )
    assert "aws:SourceAccount" in publish["Condition"]["StringEquals"]


def test_stage_access_logs_come_with_the_account_logging_role(template: dict[str, Any]) -> None:
    # REST and WebSocket stage access logs need API Gateway's account-level CloudWatch Logs role:
    # without it the stack fails ("CloudWatch Logs role ARN must be set in account settings").
    resources = template["Resources"]
    assert set(template["Parameters"]["ApiGatewayLogging"]["AllowedValues"]) == {
        "create-role",
        "account-configured",
        "off",
    }
    assert template["Parameters"]["ApiGatewayLogging"]["Default"] == "create-role"  # a fresh account deploys
    account = resources["ApiGatewayAccount"]
    assert account["Condition"] == "CreateApiGatewayLoggingRole"
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": "ApiGatewayLoggingRole.Arn"}
    role = resources["ApiGatewayLoggingRole"]
    assert role["DeletionPolicy"] == "Retain"  # the setting is account-wide: other stacks rely on it
    assert any(
        "AmazonAPIGatewayPushToCloudWatchLogs" in str(arn) for arn in role["Properties"]["ManagedPolicyArns"]
    )
    for name, stage in {
        **_of_type(template, "AWS::ApiGatewayV2::Stage"),
        **_of_type(template, "AWS::ApiGateway::Stage"),
    }.items():
        if "AccessLogSettings" not in stage["Properties"]:
            continue
        logs = stage["Properties"]["AccessLogSettings"]
        assert logs.get("Fn::If", [None])[0] == "WebSocketAccessLogs", name  # switchable off
        # Created after the account setting when this stack sets it.
        assert "ApiGatewayAccount" in str(stage.get("Metadata", {})) or "ApiGatewayAccount" in str(
            stage.get("DependsOn", [])
        ), name


def test_snapstart_is_a_documented_parameter_only(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["EnableSnapStart"]
    assert parameter["Default"] == "false"
    for constraint in ("Python 3.12", "Regions", "provisioned concurrency", "EFS"):
        assert constraint in parameter["Description"], constraint
    for function in _of_type(template, "AWS::Serverless::Function").values():
        snapstart = function["Properties"].get("SnapStart")
        if snapstart is not None:
            assert snapstart["Fn::If"][0] == "SnapStartEnabled"


CONFIG = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text(encoding="utf-8"))


def test_samconfig_parameters_satisfy_the_template(template: dict[str, Any]) -> None:
    # CloudFormation refuses a value outside AllowedValues/AllowedPattern/MinValue before it starts;
    # the same check `make preflight` runs (P9001), here on the real files.
    assert parameter_problems(template, CONFIG) == []
    # SnapStart is regional: no environment switches it on blindly.
    for environment, config in CONFIG.items():
        if isinstance(config, dict):
            overrides = config.get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
            assert "EnableSnapStart=true" not in overrides, environment
