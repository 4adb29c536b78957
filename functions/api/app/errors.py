"""How errors become responses: every domain exception is mapped here, once."""

import logging
import uuid
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import NotAuthenticated
from app.storage import ItemNotFound

logger = logging.getLogger("app")

INTERNAL_ERROR_BODY = b'{"detail":"Internal Server Error"}'


def request_id(scope: Scope) -> str:
    """API Gateway's request id, else Lambda's, else a fresh one (local runs)."""
    event = scope.get("aws.event")
    if isinstance(event, dict):
        context = event.get("requestContext")
        if isinstance(context, dict) and isinstance(context.get("requestId"), str):
            return str(context["requestId"])
    lambda_context = scope.get("aws.context")
    if lambda_context is not None and getattr(lambda_context, "aws_request_id", None):
        return str(lambda_context.aws_request_id)
    return uuid.uuid4().hex


async def _not_authenticated(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": "Not authenticated"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
    )


async def _item_not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "Item not found"}, status_code=404)


async def _validation_failed(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for that type only
        raise exc
    # FastAPI's own handler echoes inputs through float/int conversion, which
    # turns 1e400 into inf or a 5,000-digit int and then fails with a 500.
    errors: Any = jsonable_encoder(exc.errors(), custom_encoder={Decimal: str})
    return JSONResponse({"detail": errors}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping of exceptions to responses."""
    app.add_exception_handler(NotAuthenticated, _not_authenticated)
    app.add_exception_handler(ItemNotFound, _item_not_found)
    app.add_exception_handler(RequestValidationError, _validation_failed)


class UnhandledErrorMiddleware:
    """Turns any unexpected exception into a generic 500 and logs it once, with the request id.

    Starlette's ServerErrorMiddleware answers in plain text and re-raises, so
    the error would be logged twice (by it and by Mangum or uvicorn).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            logger.exception(
                "Unhandled error on %s %s",
                scope["method"],
                scope["path"],
                extra={"request_id": request_id(scope)},
            )
            if started:
                raise
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(INTERNAL_ERROR_BODY)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": INTERNAL_ERROR_BODY})
