"""What a cold start does and does not do (the timings themselves are `make bench`'s)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.check_build import LAYER_PACKAGES, layer_package_problems
from devtools.template import REPO_ROOT

PROBE = """
import json, sys
import app.main
from app import dependencies
print(json.dumps({
    "client_created": dependencies.get_dynamodb_client.cache_info().currsize == 1,
    "layout_client_created": dependencies.get_single_attempt_client.cache_info().currsize == 1,
    "modules": sorted({name.split(".")[0] for name in sys.modules}),
}))
"""


def cold_import(**environment: str) -> dict[str, object]:
    """Import the handler in a fresh interpreter, as Lambda's INIT does, with only the function's paths."""
    pythonpath = os.pathsep.join(str(REPO_ROOT / part) for part in ("functions/api", "layers/shared"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TABLE_"))}
    env.update(
        PYTHONPATH=pythonpath,
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="x",
        AWS_DEFAULT_REGION="us-east-1",
        **environment,
    )
    result = subprocess.run(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=REPO_ROOT / "functions",
    )
    probe: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return probe


def test_lambdas_init_creates_the_client_before_the_first_request() -> None:
    probe = cold_import(
        TABLE_NAME="items", IDEMPOTENCY_TABLE_NAME="keys", AWS_LAMBDA_INITIALIZATION_TYPE="on-demand"
    )
    assert probe["client_created"] is True
    # The layout row's client waits for the first request that needs the layout (tags, keys).
    assert probe["layout_client_created"] is False


def test_outside_lambda_the_import_creates_nothing() -> None:
    assert cold_import(TABLE_NAME="items", IDEMPOTENCY_TABLE_NAME="keys")["client_created"] is False


def test_a_misconfigured_init_still_imports_and_leaves_the_error_to_the_first_request() -> None:
    assert cold_import(AWS_LAMBDA_INITIALIZATION_TYPE="on-demand")["client_created"] is False


def test_the_cold_path_does_not_import_what_only_some_requests_use() -> None:
    modules = cold_import(
        TABLE_NAME="items", IDEMPOTENCY_TABLE_NAME="keys", AWS_LAMBDA_INITIALIZATION_TYPE="on-demand"
    )["modules"]
    assert isinstance(modules, list)
    # Powertools: only diagnostics (warnings, errors) need it; boto3: botocore is enough.
    for unused in ("aws_lambda_powertools", "boto3", "s3transfer", "jwt", "devtools", "unicodedata"):
        assert unused not in modules, unused


def test_the_layer_check_names_unexpected_and_returning_packages(tmp_path: Path) -> None:
    for name in LAYER_PACKAGES:
        (tmp_path / name).mkdir()
    (tmp_path / "fastapi-0.165.0.dist-info").mkdir()
    assert layer_package_problems(tmp_path) == []
    (tmp_path / "boto3").mkdir()
    (tmp_path / "pydantic" / "v1").mkdir()
    problems = layer_package_problems(tmp_path)
    assert any("unexpected top-level package boto3" in problem for problem in problems)
    assert any("pydantic/v1 should have been pruned" in problem for problem in problems)


@pytest.mark.parametrize("package", sorted(LAYER_PACKAGES))
def test_every_layer_package_is_pinned(package: str) -> None:
    pins = (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").lower().replace("_", "-")
    distribution = {
        "jwt": "pyjwt",
        "dotenv": "python-dotenv",
        "opentelemetry": "opentelemetry-api",
        "aws_lambda_powertools": "aws-lambda-powertools",
    }.get(package, package).replace("_", "-")
    assert f"\n{distribution}==" in f"\n{pins}", package
