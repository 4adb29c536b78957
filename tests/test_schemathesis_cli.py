"""schemathesis as an outsider runs it: `st run --checks all` against `make run`'s server.

Positive and negative phases, stateful sequences included; schemathesis.toml (read from the
repository root) names the two things no schema can express (see tests/schemathesis_hooks.py).
`make test` runs a bounded version; `make fuzz` sets FUZZ_EXAMPLES high.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.template import REPO_ROOT
from tests.local_server import Server
from tests.test_make_run import dev_token

pytestmark = pytest.mark.slow

EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "15")


def test_st_run_with_every_check_finds_nothing(
    server: tuple[Server, str, int], dev_env: dict[str, str]
) -> None:
    _, base, _ = server
    token = dev_token("fuzz", dev_env)
    st = Path(sys.executable).with_name("st")
    result = subprocess.run(  # noqa: S603 - the pinned schemathesis CLI
        [
            str(st),
            "run",
            f"{base}/openapi.json",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--mode",
            "all",
            "--max-examples",
            EXAMPLES,
            "--header",
            f"Authorization: Bearer {token}",
            "--no-color",
        ],
        cwd=REPO_ROOT,
        env={**dev_env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    summary = result.stdout[result.stdout.index("SUMMARY") :]
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in summary, summary
    assert " passed" in summary, summary
    assert "failure" not in summary.lower(), summary
