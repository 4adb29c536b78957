"""The CloudFormation service role's policy is derived from the registry, not guessed (issue 20).

The template is transformed as CloudFormation receives it (SAM CLI's environment), and every
resource type's create, update and delete handler permissions are read from the registry schemas
cfn-lint ships (devtools/deploy_identity.py). docs/cloudformation-service-role-policy.json must be
exactly that derivation: a template change that needs another action fails here until the
policy is regenerated.
"""

import json
import os
import subprocess
from typing import Any

import pytest

from devtools.deploy_identity import (
    UnknownResourceType,
    handler_permissions,
    needed_actions,
    service_role_policy,
)
from devtools.template import REPO_ROOT
from tests.test_preflight import SAM_PYTHON

POLICY_FILE = REPO_ROOT / "docs" / "cloudformation-service-role-policy.json"
REGENERATE = (
    "PYTHONPATH=.:layers/shared .venv/bin/python -m devtools.deploy_identity "
    ".local/transformed-template.json > docs/cloudformation-service-role-policy.json "
    "(after make lint-infra, which writes the transformed template)"
)


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    """template.yaml after the SAM transform, as CloudFormation receives it."""
    done = subprocess.run(  # noqa: S603 - SAM CLI's own environment, our module
        [str(SAM_PYTHON), "-m", "devtools.sam_transform"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    template: dict[str, Any] = json.loads(done.stdout)
    return template


def test_the_committed_policy_is_the_derivation_of_the_template(transformed: dict[str, Any]) -> None:
    committed = json.loads(POLICY_FILE.read_text(encoding="utf-8"))
    assert committed == service_role_policy(transformed), f"regenerate it: {REGENERATE}"


def test_the_policy_fits_a_customer_managed_policy(transformed: dict[str, Any]) -> None:
    text = json.dumps(service_role_policy(transformed), separators=(",", ":"))
    assert len(text) <= 6144  # IAM's limit for a managed policy (whitespace not counted)


def test_what_a_hand_written_list_missed_is_derived(transformed: dict[str, Any]) -> None:
    """The first deploy would roll back without these (issue 20's findings)."""
    actions = set(service_role_policy(transformed)["Statement"][0]["Action"])
    access_logs = {"logs:CreateLogDelivery", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies"}
    assert access_logs <= actions  # HTTP API stage access logs
    assert "lambda:TagResource" in actions  # event source mappings are tagged at creation
    assert {"kms:CreateKey", "kms:TagResource", "kms:PutKeyPolicy"} <= actions
    assert "lambda:InvokeFunction" in actions  # the LayoutUpgrade custom resource


def test_every_resource_type_of_the_template_is_covered(transformed: dict[str, Any]) -> None:
    needed = needed_actions(transformed)
    kinds = {resource["Type"] for resource in transformed["Resources"].values()}
    assert set(needed) == kinds
    assert all(needed[kind] for kind in kinds)  # every type's handlers call something


def test_a_type_no_schema_describes_cannot_be_derived() -> None:
    with pytest.raises(UnknownResourceType):
        handler_permissions("AWS::NoSuch::Thing")
    added = {"Resources": {"Extra": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {}}}}
    assert "states:CreateStateMachine" in service_role_policy(added)["Statement"][0]["Action"]
