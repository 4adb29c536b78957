"""docs/pipeline-role-policy.json: the pipeline role's least privilege covers what the stacks create."""

import json
from typing import Any

import pytest

from devtools.cfn_rules.deploy_rules import allows
from devtools.template import REPO_ROOT, load_template

POLICY = json.loads((REPO_ROOT / "docs" / "pipeline-role-policy.json").read_text())
STATEMENTS: list[dict[str, Any]] = POLICY["Statement"]
# Per resource type the template deploys: what CloudFormation calls to create and delete it.
NEEDED = {
    "AWS::DynamoDB::Table": ["dynamodb:CreateTable", "dynamodb:DeleteTable", "dynamodb:UpdateTimeToLive"],
    "AWS::Serverless::Function": [
        "lambda:CreateFunction",
        "lambda:DeleteFunction",
        "lambda:PublishVersion",
        "iam:PassRole",
    ],
    "AWS::Serverless::LayerVersion": ["lambda:PublishLayerVersion", "lambda:DeleteLayerVersion"],
    "AWS::Serverless::HttpApi": ["apigateway:POST", "apigateway:DELETE"],
    "AWS::ApiGatewayV2::Api": ["apigateway:POST", "apigateway:DELETE"],
    "AWS::ApiGatewayV2::Stage": ["apigateway:POST", "apigateway:PATCH"],
    "AWS::ApiGatewayV2::Route": ["apigateway:POST"],
    "AWS::ApiGatewayV2::Integration": ["apigateway:POST"],
    "AWS::ApiGatewayV2::RouteResponse": ["apigateway:POST"],
    "AWS::ApiGateway::Account": ["apigateway:PATCH", "iam:PassRole"],
    "AWS::Lambda::Permission": ["lambda:AddPermission", "lambda:RemovePermission"],
    # CloudFormation invokes a custom resource's function with the deployer's permissions.
    "Custom::LayoutUpgrade": ["lambda:InvokeFunction"],
    # A function's Schedule event becomes an EventBridge rule (SAM's transform); the rule's
    # handler also describes it and lists its targets (aws-cloudformation-resource-providers-events).
    "AWS::Events::Rule": [
        "events:PutRule",
        "events:DescribeRule",
        "events:PutTargets",
        "events:RemoveTargets",
        "events:ListTargetsByRule",
        "events:DeleteRule",
    ],
    "AWS::IAM::Role": ["iam:CreateRole", "iam:DeleteRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"],
    "AWS::Logs::LogGroup": ["logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy"],
    "AWS::SNS::Topic": ["sns:CreateTopic", "sns:DeleteTopic"],
    "AWS::SNS::TopicPolicy": ["sns:SetTopicAttributes"],
    "AWS::SQS::Queue": ["sqs:CreateQueue", "sqs:DeleteQueue"],
    "AWS::KMS::Key": ["kms:CreateKey", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion"],
    "AWS::CloudWatch::Alarm": ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"],
    "AWS::SecretsManager::Secret": [
        "secretsmanager:CreateSecret",
        "secretsmanager:DeleteSecret",
        "secretsmanager:GetRandomPassword",
    ],
}
# What the pipeline itself calls: deploys (change sets), the smoke test's outputs, the probe and the cleanup.
PIPELINE = [
    "cloudformation:CreateChangeSet",
    "cloudformation:ExecuteChangeSet",
    "cloudformation:DescribeStacks",
    "cloudformation:ListStackResources",
    "cloudformation:DeleteStack",
    "s3:PutObject",
    "cloudwatch:SetAlarmState",
    "cloudwatch:DescribeAlarms",
    "sns:Subscribe",
    "sns:Unsubscribe",
    "sqs:CreateQueue",
    "sqs:ReceiveMessage",
    "sqs:DeleteQueue",
]
# Actions without resource-level permissions: the only ones allowed on "*" without a condition.
NO_RESOURCE_LEVEL = {
    "cloudformation:ValidateTemplate",
    "kms:CreateKey",
    "secretsmanager:GetRandomPassword",
    "cloudwatch:DescribeAlarms",
    "logs:DescribeLogGroups",
    "sqs:ListQueues",
    "sns:ListTopics",
    "lambda:ListEventSourceMappings",
}


def granted(action: str) -> bool:
    return any(allows(statement, action) for statement in STATEMENTS)


def _kinds() -> set[str]:
    """The template's resource types, and those SAM's transform adds for function events."""
    kinds = set()
    for resource in load_template()["Resources"].values():
        kinds.add(resource["Type"])
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event["Type"] == "Schedule":
                kinds.add("AWS::Events::Rule")
    return kinds


@pytest.mark.parametrize("kind", sorted(_kinds()))
def test_every_resource_type_the_template_deploys_is_covered(kind: str) -> None:
    assert kind in NEEDED, f"{kind}: add the actions CloudFormation needs for it to NEEDED and the policy"
    missing = [action for action in NEEDED[kind] if not granted(action)]
    assert not missing, (kind, missing)


def test_the_pipelines_own_calls_are_covered() -> None:
    assert [action for action in PIPELINE if not granted(action)] == []


def test_nothing_is_granted_on_everything() -> None:
    for statement in STATEMENTS:
        actions = statement["Action"]
        assert all(action != "*" and not action.endswith(":*") for action in actions), statement["Sid"]
        resources = statement["Resource"]
        if "*" in resources and "Condition" not in statement:
            assert set(actions) <= NO_RESOURCE_LEVEL, statement["Sid"]
        assert statement["Effect"] == "Allow"


def test_resources_are_scoped_to_this_projects_stacks() -> None:
    for statement in STATEMENTS:
        for resource in statement["Resource"]:
            if resource == "*" or ":transform/" in resource or ":layer:" in resource or ":key/" in resource:
                continue
            scoped = ("items-api-" in resource) or ("aws-sam-cli-managed-default" in resource)
            assert (
                scoped
                or "CursorSigningSecret-" in resource
                or "/apis" in resource
                or "/account" in resource
                or "/tags/" in resource
            ), resource
