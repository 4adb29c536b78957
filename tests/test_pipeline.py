"""The deploy pipeline (.github/workflows) and samconfig.toml environments."""

import re
import tomllib
from typing import Any

import yaml

from devtools.template import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci-cd.yml"


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def steps(job: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = workflow()["jobs"][job]["steps"]
    return found


def test_actions_are_pinned_by_commit_and_checkouts_keep_no_credentials() -> None:
    for job in workflow()["jobs"]:
        for step in steps(job):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
                if step["uses"].startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False


def test_permissions_are_minimal() -> None:
    flow = workflow()
    assert flow["permissions"] == {"contents": "read"}
    assert "permissions" not in flow["jobs"]["test"]
    for job in ("deploy-staging", "deploy-production"):
        assert flow["jobs"][job]["permissions"] == {"contents": "read", "id-token": "write"}


def test_pipeline_order_and_gates() -> None:
    jobs = workflow()["jobs"]
    assert [s["run"] for s in steps("test") if "run" in s] == [
        "make test",
        "make test-lambda-python",
        "make build",
    ]
    assert jobs["deploy-staging"]["needs"] == "test"
    assert "refs/heads/main" in jobs["deploy-staging"]["if"]
    assert jobs["deploy-production"]["needs"] == "deploy-staging"
    assert jobs["deploy-production"]["environment"] == "production"
    for job, env in (("deploy-staging", "staging"), ("deploy-production", "prod")):
        runs = " ".join(s.get("run", "") for s in steps(job))
        assert f"--config-env {env}" in runs
        assert "make smoke" in runs
        assert runs.index("make preflight") < runs.index("sam deploy")  # the gate before every deploy
        credentials = next(s for s in steps(job) if "configure-aws-credentials" in s.get("uses", ""))
        assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
        assert "aws-access-key-id" not in credentials["with"]


def test_secrets_never_reach_a_shell_line_directly() -> None:
    for job in workflow()["jobs"]:
        for step in steps(job):
            assert "${{" not in step.get("run", ""), step


def test_samconfig_environments() -> None:
    config = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text())
    names = {env: config[env]["global"]["parameters"]["stack_name"] for env in ("default", "staging", "prod")}
    assert len(set(names.values())) == 3
    assert config["prod"]["deploy"]["parameters"]["confirm_changeset"] is True
    for env in ("default", "staging", "prod"):
        assert config[env]["deploy"]["parameters"]["capabilities"] == "CAPABILITY_IAM"
        assert config[env]["build"]["parameters"]["build_in_source"] is True
