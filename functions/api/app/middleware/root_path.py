"""Pure ASGI middleware that sets `root_path` to the prefix the client used (stage, base path)."""

from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from app.settings import get_settings


def client_prefix(event: Any, path: str) -> tuple[str, str]:
    """Split the path the client requested into (stage prefix, path the app routes on).

    - HTTP API (payload v2) and Function URLs: a named stage stays in ``rawPath``
      (``/dev/items/1``); the ``$default`` stage adds nothing.
    - REST API (payload v1): ``path`` lacks the stage, ``requestContext.path``
      has it (``/Prod/items/1``).
    """
    if not isinstance(event, dict):
        return "", path
    context = event.get("requestContext")
    if not isinstance(context, dict):
        return "", path
    if event.get("version") == "2.0":
        stage = context.get("stage")
        if isinstance(stage, str) and stage and stage != "$default":
            prefix = f"/{stage}"
            if path == prefix or path.startswith(prefix + "/"):
                return prefix, path[len(prefix) :] or "/"
        return "", path
    client_path = context.get("path")
    if isinstance(client_path, str) and client_path != path and client_path.endswith(path):
        return client_path[: -len(path)].rstrip("/"), path
    return "", path


class RootPathMiddleware:
    """Lets the docs, `Location` headers and routing see the URL the client actually used.

    Per ASGI, ``path`` includes ``root_path``; Starlette strips ``root_path``
    before routing and adds it back when building URLs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            prefix, path = client_prefix(scope.get("aws.event"), scope["path"])
            base = get_settings().api_base_path
            # A custom domain's base path mapping arrives inside the path.
            if base and (path == base or path.startswith(base + "/")):
                prefix, path = prefix + base, path[len(base) :] or "/"
            if prefix:
                root_path = scope.get("root_path", "") + prefix
                scope = {**scope, "root_path": root_path, "path": root_path + path}
        await self.app(scope, receive, send)


def route_path(scope: Scope) -> str:
    """The path the app routes on: the request path without the client's prefix."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def under_prefix(path: str, prefixes: tuple[str, ...]) -> bool:
    """Whether `path` is one of `prefixes` or below one of them (``/items``, ``/items/3``)."""
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def serves(app: Any, scope: Scope, method: str) -> bool:
    """Whether a route of `app` serves `method` at this request's path (routing only, nothing runs)."""
    probe = {
        "type": "http",
        "method": method,
        "path": scope["path"],
        "root_path": scope.get("root_path", ""),
        "headers": [],
    }
    routes = getattr(getattr(app, "router", None), "routes", ())
    return any(route.matches(probe)[0] is Match.FULL for route in routes)
