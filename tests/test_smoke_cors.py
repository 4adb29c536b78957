"""`make smoke ORIGIN=…` checks a browser's CORS preflight the way API Gateway answers it."""

import subprocess
import sys
from collections.abc import Callable

import httpx2 as httpx
import pytest

from devtools.smoke import cors_preflight_allows

ORIGIN = "https://app.example.com"
Handler = Callable[[httpx.Request], httpx.Response]


def api_gateway_preflight(request: httpx.Request) -> httpx.Response:
    """What API Gateway answers with CORS configured and no authorized route matching OPTIONS."""
    assert "authorization" not in request.headers  # a preflight carries no token
    return httpx.Response(
        204,
        headers={
            "access-control-allow-origin": request.headers["origin"],
            "access-control-allow-methods": "GET,POST,PUT,PATCH,DELETE",
            "access-control-allow-headers": "authorization,content-type,if-match,idempotency-key",
        },
    )


def authorizer_refuses(request: httpx.Request) -> httpx.Response:
    """What an `ANY` route with the JWT authorizer answers to the same preflight."""
    return httpx.Response(401, json={"message": "Unauthorized"})


def no_cors_headers(request: httpx.Request) -> httpx.Response:
    """The app alone (make run): 204 with Allow, no CORS headers."""
    return httpx.Response(204, headers={"allow": "GET, HEAD, POST, OPTIONS"})


@pytest.mark.parametrize(
    ("handler", "allowed"),
    [(api_gateway_preflight, True), (authorizer_refuses, False), (no_cors_headers, False)],
)
def test_preflight_check(handler: Handler, allowed: bool) -> None:
    with httpx.Client(transport=httpx.MockTransport(handler), base_url="https://api.example") as client:
        assert cors_preflight_allows(client, ORIGIN) is allowed


def test_another_origin_is_not_allowed() -> None:
    def other_origin(request: httpx.Request) -> httpx.Response:
        response = api_gateway_preflight(request)
        response.headers["access-control-allow-origin"] = "https://other.example"
        return response

    with httpx.Client(transport=httpx.MockTransport(other_origin), base_url="https://api.example") as client:
        assert cors_preflight_allows(client, ORIGIN) is False


def _smoke(*args: str) -> "subprocess.CompletedProcess[str]":
    from devtools.template import REPO_ROOT

    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "devtools.smoke", "--token", "t", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_make_smoke_says_in_one_line_that_nothing_answers() -> None:
    """A refused connection and a server that never answers: one line each, no traceback."""
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed again: nothing listens there
    refused = _smoke("--base-url", f"http://127.0.0.1:{port}")
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"FAILED cannot connect to http://127.0.0.1:{port}")
    assert refused.stderr.count("\n") == 1
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts the connection, never answers
        base = f"http://127.0.0.1:{silent.getsockname()[1]}"
        timed_out = _smoke("--base-url", base, "--timeout", "0.5")
    assert timed_out.returncode == 1
    assert timed_out.stderr == f"FAILED {base} did not answer within 0.5 s\n"
    assert "Traceback" not in refused.stderr + timed_out.stderr
