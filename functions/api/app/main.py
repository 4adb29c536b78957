"""The FastAPI application and its Lambda handler."""

import gc

# A cold start allocates hundreds of thousands of long-lived objects (modules,
# classes, validators); running the cycle collector over them while they are
# being created is wasted work (docs/performance.md measures it). It resumes below, with
# everything built so far frozen out of later collections.
gc.disable()

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any  # noqa: E402

from fastapi import APIRouter, FastAPI  # noqa: E402
from mangum import Mangum  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from app.auth import TokenVerifier  # noqa: E402
from app.edge import EdgeMiddleware  # noqa: E402
from app.routes import docs, health, items  # noqa: E402
from app.routes.errors import add_error_schemas, install_error_handlers  # noqa: E402
from app.sam_local import sam_local_token_verifier  # noqa: E402


def create_app(
    *,
    token_verifier: TokenVerifier | None = None,
    lifespan: Any = None,
    extra_routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """Build the application; it reads no setting and creates no client (see _create_clients_during_init)."""
    app = FastAPI(
        title="Items API",
        version="1.0.0",
        summary="Per-owner items, served by FastAPI on AWS Lambda with DynamoDB.",
        # An API answers /items/ with 404 rather than a redirect whose URL would
        # lose the API Gateway stage prefix.
        redirect_slashes=False,
        # No OpenTelemetry provider is configured on Lambda; skip its per-request wrapper.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        lifespan=lifespan,
        middleware=[Middleware(EdgeMiddleware)],
        # Served by app.routes.docs from the function's own copies: no CDN, no font host.
        docs_url=None,
        redoc_url=None,
        # operationIds are the route functions' names (create_item, get_item, list_items, ...):
        # what a generated SDK calls its methods.
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.token_verifier = token_verifier
    install_error_handlers(app)
    add_error_schemas(app)
    app.include_router(docs.router)
    app.include_router(health.router)
    app.include_router(items.router)
    for router in extra_routers:
        app.include_router(router)
    return app


def _ensure_event_loop() -> None:
    # Mangum runs each request on the thread's current loop (asyncio.get_event_loop),
    # which since Python 3.12 warns when no loop was ever set (and 3.14 raises).
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def _create_clients_during_init() -> None:
    """In Lambda's INIT phase: settings and the DynamoDB client, before the first request arrives."""
    from app import dependencies

    with contextlib.suppress(Exception):  # reported by the first request that needs the store
        dependencies.get_item_store()


app = create_app(token_verifier=sam_local_token_verifier())  # None unless SAM CLI runs it
_ensure_event_loop()
if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"):  # set by Lambda for INIT; `make bench` measures both
    _create_clients_during_init()
if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
    from app import snapstart  # noqa: F401  # registers the runtime hooks
handler = Mangum(app, lifespan="off")
gc.freeze()
gc.enable()
