"""Property-based tests of the whole API against its own OpenAPI document (schemathesis).

`make test` runs at least 100 examples per operation for each of two owners;
`make fuzz` (FUZZ_EXAMPLES=2000) runs far more.
"""

import os
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import app

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# Built from the Lambda app's own document (no request, so no settings needed
# at import); requests go in-process to the local app, which is the same app
# built by the same factory, plus the dev-token check the tests authenticate with.
schema = schemathesis.openapi.from_dict(app.openapi())


@pytest.fixture
def seeded(
    local_app: FastAPI, client: Any, auth: Callable[[str], dict[str, str]]
) -> Callable[[str], dict[str, str]]:
    """Local auth, a moto table, and a few items of both owners so generated ids sometimes hit one."""
    assert local_app.openapi() == app.openapi()  # /ws is a WebSocket route: not in the document
    for owner in ("alice", "bob"):
        for i in range(3):
            created = client.post(
                "/items", json={"name": f"{owner} {i}", "price": 1, "tags": ["t"]}, headers=auth(owner)
            )
            assert created.status_code == 201  # the tokens work: the run is not 401s only
    return auth


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)


def call_as(case: Any, local_app: FastAPI, headers: dict[str, str]) -> None:
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    case.call_and_validate(app=local_app, headers=headers, checks=CHECKS)


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_conforms_to_its_schema_as_alice(
    case: Any, local_app: FastAPI, seeded: Callable[[str], dict[str, str]]
) -> None:
    call_as(case, local_app, seeded("alice"))


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_conforms_to_its_schema_as_bob(
    case: Any, local_app: FastAPI, seeded: Callable[[str], dict[str, str]]
) -> None:
    call_as(case, local_app, seeded("bob"))
