"""The deploy pipeline (.github/workflows) and samconfig.toml environments."""

import re
import tomllib
from typing import Any

import yaml

from devtools.template import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci-cd.yml"
# The jobs that reach AWS, and the identities environment whose GitHub role each assumes.
AWS_JOBS = {
    "pr-stack": "pr",
    "pr-stack-closed": "pr",
    "pr-sweep": "pr",
    "deploy-staging": "staging",
    "deploy-production": "prod",
}


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
    for job in AWS_JOBS:
        assert flow["jobs"][job]["permissions"] == {"contents": "read", "id-token": "write"}


def test_pipeline_order_and_gates() -> None:
    jobs = workflow()["jobs"]
    assert [s["run"] for s in steps("test") if "run" in s] == ["make test PYTHON=python3.13", "make build"]
    assert jobs["test"]["steps"][-1]["uses"].startswith("actions/upload-artifact@")
    assert jobs["deploy-staging"]["needs"] == jobs["pr-stack"]["needs"] == "test"  # the gate
    assert "refs/heads/main" in jobs["deploy-staging"]["if"]
    assert jobs["deploy-production"]["needs"] == "deploy-staging"
    assert jobs["deploy-production"]["environment"] == "production"
    # One build per run, the test job's: every deploy (the pull request's stack, staging, then
    # production, what staging deployed and smoke tested) deploys it and builds nothing.
    [uploaded] = [s for s in steps("test") if "upload-artifact" in s.get("uses", "")]
    for job in ("pr-stack", "deploy-staging", "deploy-production"):
        assert "make build" not in " ".join(s.get("run", "") for s in steps(job)), job
        [downloaded] = [s for s in steps(job) if "download-artifact" in s.get("uses", "")]
        assert uploaded["with"]["name"] == downloaded["with"]["name"]
        assert uploaded["with"]["path"] == downloaded["with"]["path"] == ".aws-sam/build"
    for job, env in (("deploy-staging", "staging"), ("deploy-production", "prod")):
        runs = " ".join(s.get("run", "") for s in steps(job))
        assert f"--config-env {env}" in runs
        assert "make smoke" in runs
        assert "make preflight" not in runs  # the gate ran once, in the test job this one follows
        assert "--template-file .aws-sam/build/template.yaml" in runs


def test_each_job_assumes_its_environments_role_after_running_the_codes_own_steps() -> None:
    """The code's checks, build and installs run without AWS credentials; then the job's GitHub
    environment's role (one per environment, trusting only that environment's jobs)."""
    from devtools.deploy_identity import GITHUB_ENVIRONMENTS

    flow = workflow()
    for job, identities in AWS_JOBS.items():
        assert flow["jobs"][job]["environment"] == GITHUB_ENVIRONMENTS[identities], job
        job_steps = steps(job)
        [credentials] = [
            i for i, s in enumerate(job_steps) if "configure-aws-credentials" in s.get("uses", "")
        ]
        assert job_steps[credentials]["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
        assert "aws-access-key-id" not in job_steps[credentials]["with"]
        before = " ".join(s.get("run", "") for s in job_steps[:credentials])
        after = " ".join(s.get("run", "") for s in job_steps[credentials + 1 :])
        for own_code in ("make preflight", "make build", "make install", "make test", "pip install"):
            assert own_code not in after, (job, own_code)
        assert "sam deploy" not in before, job
        assert "sam deploy" in after or "pr_stack" in after, job
    assert set(AWS_JOBS) == {
        name
        for name in flow["jobs"]
        if any("configure-aws-credentials" in s.get("uses", "") for s in steps(name))
    }


def test_every_deploy_goes_through_the_environments_service_role_and_bucket() -> None:
    for job in ("pr-stack", "deploy-staging", "deploy-production"):
        [deploy] = [s for s in steps(job) if "sam deploy" in s.get("run", "")]
        assert '--role-arn "$CLOUDFORMATION_ROLE"' in deploy["run"]
        assert "--template-file .aws-sam/build/template.yaml" in deploy["run"]  # the test job's build
        assert '--no-resolve-s3 --s3-bucket "$ARTIFACT_BUCKET"' in deploy["run"]
        assert deploy["env"]["CLOUDFORMATION_ROLE"] == "${{ vars.AWS_CLOUDFORMATION_ROLE_ARN }}"
        assert deploy["env"]["ARTIFACT_BUCKET"] == "${{ vars.AWS_ARTIFACT_BUCKET }}"


def test_a_daily_sweep_removes_what_cancelled_runs_left() -> None:
    flow = workflow()
    assert flow[True]["schedule"] == [{"cron": "17 4 * * *"}]
    job = flow["jobs"]["pr-sweep"]
    assert "schedule" in job["if"]
    assert any("pr_stack sweep --older-than-hours 24" in s.get("run", "") for s in steps("pr-sweep"))
    for other in ("test", "pr-stack", "pr-stack-closed", "deploy-staging"):
        condition = flow["jobs"][other]["if"]
        assert "push" in condition or "pull_request" in condition, other  # a schedule runs only the sweep


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


def test_each_pull_request_gets_its_own_stack_probed_and_always_deleted() -> None:
    flow = workflow()
    # YAML 1.1 reads the key `on` as true.
    assert set(flow[True]["pull_request"]["types"]) == {"opened", "synchronize", "reopened", "closed"}
    assert "closed" in flow["jobs"]["test"]["if"]  # no checks on a closed pull request
    job = flow["jobs"]["pr-stack"]
    assert job["needs"] == "test"
    for name in ("pr-stack", "pr-stack-closed"):
        condition = flow["jobs"][name]["if"]
        # a fork's pull request gets no credentials for our account
        assert "github.event.pull_request.head.repo.full_name == github.repository" in condition
        assert flow["jobs"][name]["env"]["STACK"] == "items-api-pr-${{ github.event.pull_request.number }}"
        assert flow["jobs"][name]["concurrency"] == {
            "group": "pr-stack-${{ github.event.pull_request.number }}",
            "cancel-in-progress": False,
        }
    assert "github.event.action != 'closed'" in job["if"]
    assert "github.event.action == 'closed'" in flow["jobs"]["pr-stack-closed"]["if"]
    runs = [step.get("run", "") for step in steps("pr-stack")]
    order = [
        next(i for i, run in enumerate(runs) if marker in run)
        for marker in (
            "make install sam",
            "sam deploy --config-env pr",
            "make smoke",
            "alarm-probe",
            "cleanup",
        )
    ]
    assert order == sorted(order)
    deploy = next(run for run in runs if "sam deploy" in run)
    assert '--stack-name "$STACK"' in deploy
    cleanup = next(step for step in steps("pr-stack") if "cleanup" in step.get("run", ""))
    assert cleanup["if"] == "always()"  # also when the deploy, smoke test or probe failed
    assert any("pr_stack cleanup" in step.get("run", "") for step in steps("pr-stack-closed"))


def test_pull_request_stacks_are_small_and_deletable() -> None:
    config = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text())
    overrides = dict(
        pair.split("=", 1) for pair in config["pr"]["deploy"]["parameters"]["parameter_overrides"].split()
    )
    assert overrides["EphemeralStack"] == "true"  # no deletion protection on the retained table
    assert overrides["ApiGatewayLogging"] == "account-configured"  # no retained account role per pull request
    assert int(overrides["ThrottlingRateLimit"]) <= 10
    for env in ("default", "staging", "prod"):
        assert "EphemeralStack=true" not in config[env]["deploy"]["parameters"].get("parameter_overrides", "")


def test_a_pull_request_stack_allows_the_origin_its_smoke_test_sends_from() -> None:
    """With SMOKE_CORS_ORIGIN set, the smoke test checks a CORS preflight: the stack must allow it."""
    deploy = next(step for step in steps("pr-stack") if "sam deploy" in step.get("run", ""))
    smoke = next(step for step in steps("pr-stack") if "make smoke" in step.get("run", ""))
    assert deploy["env"]["ORIGIN"] == smoke["env"]["ORIGIN"] == "${{ vars.SMOKE_CORS_ORIGIN }}"
    assert '${ORIGIN:+CorsAllowedOrigins="$ORIGIN"}' in deploy["run"]


def test_a_waiting_production_approval_holds_back_no_staging_deploy() -> None:
    flow = workflow()
    group = flow["concurrency"]["group"]
    # Runs on main get a group of their own (the run id); only a pull request's runs share one.
    assert "github.run_id" in group
    assert "github.event_name == 'pull_request'" in group
    staging, production = flow["jobs"]["deploy-staging"], flow["jobs"]["deploy-production"]
    assert staging["concurrency"] == {"group": "deploy-staging", "cancel-in-progress": False}
    assert production["concurrency"] == {"group": "deploy-production", "cancel-in-progress": False}
