"""The CloudFormation service role's policy, derived from what AWS says each resource handler calls.

CloudFormation creates, updates and deletes each resource with the permissions of the role it is
given (`sam deploy --role-arn`); the CloudFormation registry publishes, per resource type, the
actions its create, update and delete handlers call ("handlers" in each type's schema, which
cfn-lint ships). This module reads them for every resource type of the transformed template,
adds what no schema lists (each with its source), and prints the policy:

    PYTHONPATH=.:layers/shared .venv/bin/python -m devtools.deploy_identity .local/transformed-template.json

docs/cloudformation-service-role-policy.json is its output; tests/test_deploy_identity.py
recomputes it from template.yaml and fails when the template gains anything the role cannot do.
Resource scoping and permissions boundaries are not derived here (docs/deploy.md, Identities).
"""

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


def service_role_policy(transformed: dict[str, Any]) -> dict[str, Any]:
    """The service role's policy: every needed action once (it must fit a managed policy's 6,144
    characters, which one statement per resource type would not)."""
    actions = sorted(set().union(*needed_actions(transformed).values()))
    statement = {"Sid": "ResourceHandlers", "Effect": "Allow", "Action": actions, "Resource": "*"}
    return {"Version": "2012-10-17", "Statement": [statement]}


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    transformed = json.loads(Path(arguments[0]).read_text(encoding="utf-8"))
    print(json.dumps(service_role_policy(transformed), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
