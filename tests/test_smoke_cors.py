"""`make smoke ORIGIN=…` checks a browser's CORS preflight the way API Gateway answers it."""

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
