"""A TypeScript client generated from /openapi.json drives the contract's workflow under Node.

openapi-typescript generates the types, openapi-fetch makes the calls (pinned in
tools/ts-client), tsc compiles them strictly and Node runs tools/ts-client/workflow.ts against
`make run`'s server: create with Idempotency-Key, the ETag from the typed item for a conditional
PATCH (412, then 200), every page of a `tag` + `q` listing, delete, a 422. Whatever the generator
makes awkward is fixed in the schema, not here.
"""

import subprocess
from pathlib import Path

import pytest

from devtools.template import REPO_ROOT
from tests.local_server import Server
from tests.test_make_run import dev_token

pytestmark = pytest.mark.slow

TOOLS = REPO_ROOT / "tools" / "ts-client"


def _run(*command: str | Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(  # noqa: S603 - the pinned tools of tools/ts-client
        [str(part) for part in command],
        cwd=TOOLS,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


def test_the_generated_typescript_client_completes_the_workflow(
    server: tuple[Server, str, int], dev_env: dict[str, str]
) -> None:
    if not (TOOLS / "node_modules").is_dir():
        pytest.fail("tools/ts-client is not installed: make ts-client (make pytest and make test install it)")
    _, base, _ = server
    bin_dir = TOOLS / "node_modules" / ".bin"
    _run(bin_dir / "openapi-typescript", f"{base}/openapi.json", "--output", "generated/schema.d.ts")
    _run(bin_dir / "tsc", "--project", "tsconfig.json")
    env = {**dev_env, "BASE_URL": base, "TOKEN": dev_token("ts-client", dev_env)}
    output = _run("node", Path("build") / "workflow.js", env=env)
    assert '"created":5' in output, output
