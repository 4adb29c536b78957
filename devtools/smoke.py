"""`make smoke BASE_URL=… TOKEN=… [WS_URL=…]`: a black-box check of a deployment, touching only its item."""

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2 as httpx

# Deployed, a change reaches a socket through the stream and the notifier within a few seconds.
REALTIME_WAIT_SECONDS = 20


class _Realtime:
    """One realtime connection of the smoke test, and the changes it received for one item."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket

    def ping(self) -> bool:
        self.socket.send(json.dumps({"action": "ping"}))
        return bool(json.loads(self.socket.recv(timeout=REALTIME_WAIT_SECONDS)) == {"type": "pong"})

    def changes_of(self, item_id: int, count: int) -> list[tuple[str, int]]:
        """The first `count` changes to this item (other activity of the owner is skipped)."""
        found: list[tuple[str, int]] = []
        deadline = time.monotonic() + REALTIME_WAIT_SECONDS
        while len(found) < count and time.monotonic() < deadline:
            message = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == item_id:
                found.append((message["type"], message["version"]))
        return found


@contextmanager
def _realtime(
    ws_url: str | None, token: str, check: Callable[[str, Callable[[], bool]], None]
) -> Iterator[_Realtime | None]:
    if not ws_url:
        yield None
        return
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    def refused() -> bool:
        try:
            connect(f"{ws_url}?token=not-a-token", open_timeout=15).close()
        except InvalidStatus as error:
            return bool(error.response.status_code == 401)
        return False

    check("WebSocket with a bad token is refused with 401", refused)
    try:
        socket = connect(f"{ws_url}?token={token}", open_timeout=15)
    except Exception as error:  # reported as a failed check, like every other (never the token)
        reason = f"{type(error).__name__}: {error}".replace(token, "<token>")
        check(f"WebSocket connects ({reason})", lambda: False)
        yield None
        return
    with socket:
        realtime = _Realtime(socket)
        check("WebSocket ping is answered with pong", realtime.ping)
        yield realtime


def cors_preflight_allows(client: httpx.Client, origin: str) -> bool:
    """A browser's preflight from `origin`, without a token: 2xx with the CORS headers for it."""
    response = client.options(
        "/items",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
        },
    )
    allowed_headers = response.headers.get("access-control-allow-headers", "").lower()
    return (
        200 <= response.status_code < 300
        and response.headers.get("access-control-allow-origin") == origin
        and "POST" in response.headers.get("access-control-allow-methods", "").upper()
        and "authorization" in allowed_headers
    )


def blocker(base: str, auth: dict[str, str], timeout: float) -> str | None:
    """Why no check can pass, in one line (nothing answers, or the token is refused), or None."""
    try:
        with httpx.Client(base_url=base, timeout=timeout) as client:
            probe = client.get("/items", params={"limit": 1}, headers=auth)
    except httpx.ConnectError as error:
        return f"cannot connect to {base}: {error} (is BASE_URL right, and the stack deployed?)"
    except httpx.TimeoutException:
        return f"{base} did not answer within {timeout:g} s"
    except httpx.HTTPError as error:
        return f"{base}: {type(error).__name__}: {error}"
    if probe.status_code in {401, 403}:
        detail = probe.text.strip()[:200]
        return (
            f"the token is refused with {probe.status_code} ({detail}): every call that needs it would "
            "fail; send an access token this API accepts (README, Tokens)"
        )
    return None


def run_checks(
    base_url: str, token: str, ws_url: str | None = None, origin: str | None = None, timeout: float = 15
) -> list[str]:
    """Each failed check, described; an empty list means the deployment answers as documented."""
    auth = {"Authorization": f"Bearer {token}"}
    base = base_url.rstrip("/")
    reason = blocker(base, auth, timeout)
    if reason is not None:
        return [reason]
    failures: list[str] = []

    def check(name: str, condition: Callable[[], bool]) -> None:
        try:
            ok = condition()
        except Exception as error:  # a smoke test reports every failure, whatever it was
            failures.append(f"{name}: {type(error).__name__}: {error}".replace(token, "<token>"))
            return
        if not ok:
            failures.append(name)

    with httpx.Client(base_url=base, timeout=timeout) as client, _realtime(ws_url, token, check) as realtime:
        check("GET /health is 200 ok", lambda: client.get("/health").json() == {"status": "ok"})
        check("GET /docs serves Swagger UI", lambda: "swagger-ui" in client.get("/docs").text)
        check(
            "GET /openapi.json lists /items", lambda: "/items" in client.get("/openapi.json").json()["paths"]
        )
        check("GET /items without a token is 401", lambda: client.get("/items").status_code == 401)
        if origin:  # the stack's CorsAllowedOrigins is set: a browser's preflight must pass
            check(f"CORS preflight from {origin} is allowed", lambda: cors_preflight_allows(client, origin))
        check(
            "POST /items with a string price is 422",
            lambda: (
                client.post("/items", json={"name": "smoke", "price": "1"}, headers=auth).status_code == 422
            ),
        )
        name = f"smoke-{uuid.uuid4().hex[:8]}"
        try:
            created = client.post(
                "/items", json={"name": name, "price": 1.5, "tags": ["smoke"]}, headers=auth
            )
        except httpx.HTTPError as error:
            failures.append(f"POST /items: {type(error).__name__}: {error}".replace(token, "<token>"))
            return failures
        check(
            "POST /items is 201 with Location",
            lambda: created.status_code == 201 and "location" in created.headers,
        )
        if created.status_code != 201:
            return failures
        item: dict[str, Any] = created.json()
        path = f"/items/{item['id']}"
        check("GET the new item", lambda: client.get(path, headers=auth).json() == item)
        check(
            "PATCH changes it (version 2)",
            lambda: client.patch(path, json={"quantity": 2}, headers=auth).json()["version"] == 2,
        )
        check(
            "PUT replaces it (version 3)",
            lambda: client.put(path, json={"name": name, "price": 2}, headers=auth).json()["version"] == 3,
        )
        check(
            "GET /items finds it",
            lambda: any(
                i["id"] == item["id"]
                for i in client.get("/items", params={"q": name}, headers=auth).json()["items"]
            ),
        )
        check("DELETE is 204", lambda: client.delete(path, headers=auth).status_code == 204)
        check("GET after DELETE is 404", lambda: client.get(path, headers=auth).status_code == 404)
        if realtime is not None:
            expected = [("item.created", 1), ("item.updated", 2), ("item.updated", 3), ("item.deleted", 4)]
            check(
                "WebSocket receives the item's 4 changes in version order",
                lambda: realtime.changes_of(item["id"], 4) == expected,
            )
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True, help="the API's URL, e.g. the stack's ApiUrl output")
    parser.add_argument("--token", required=True, help="a bearer token accepted by the API")
    parser.add_argument("--ws-url", help="the realtime URL, e.g. the stack's WebSocketUrl output")
    parser.add_argument(
        "--origin", help="an origin of the stack's CorsAllowedOrigins: checks the CORS preflight"
    )
    parser.add_argument("--timeout", type=float, default=15, help="seconds to wait for each answer")
    args = parser.parse_args(argv)
    failures = run_checks(args.base_url, args.token, args.ws_url, args.origin, args.timeout)
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    print(f"smoke: {'ok' if not failures else f'{len(failures)} failed'} against {args.base_url}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
