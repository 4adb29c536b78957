"""The ASGI layers around the app, all pure ASGI, and their order: STACK, outermost first.

May import settings, auth, observability, dependencies and store; never routes or main.
"""

from starlette.middleware import Middleware

from app.middleware.body_limit import BodyLimitMiddleware
from app.middleware.head import HeadMiddleware
from app.middleware.idempotency import IdempotencyMiddleware
from app.middleware.request_log import RequestLogMiddleware
from app.middleware.response_headers import ResponseHeadersMiddleware
from app.middleware.root_path import RootPathMiddleware
from app.middleware.unhandled_error import UnhandledErrorMiddleware

# Where the per-owner resources live: their responses are never cached
# (no-store) and their writes honour Idempotency-Key. A new resource adds its prefix.
RESOURCE_PREFIXES = ("/items",)

# Outermost first: each layer sees what the ones before it did.
STACK = [
    # The stage or base-path prefix, so every later layer (and the docs) sees the client's URL.
    Middleware(RootPathMiddleware),
    # Outside the error mapping: even a 500 is logged once and counted.
    Middleware(RequestLogMiddleware),
    # X-Request-ID and security headers on every response, errors included.
    Middleware(ResponseHeadersMiddleware, private_prefixes=RESOURCE_PREFIXES),
    # Anything that escaped the app: 503 (AWS unavailable) or a generic 500.
    Middleware(UnhandledErrorMiddleware),
    # HEAD is routed as GET; only the body is left out.
    Middleware(HeadMiddleware),
    # 413 before anything reads the body.
    Middleware(BodyLimitMiddleware),
    # Innermost: a replay answers before the app runs again.
    Middleware(IdempotencyMiddleware, prefixes=RESOURCE_PREFIXES),
]
