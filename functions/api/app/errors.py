"""How errors become responses: every domain exception is mapped here, once."""

from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.asgi_json import send_json
from app.auth import NotAuthenticated
from app.observability import get_logger
from app.response_headers import request_id
from app.storage import ItemNotFound, PreconditionFailed

# Error codes botocore's standard retry mode retries; once they reach the app
# the retries are spent and the client should come back later.
_UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
    }
)
RETRY_AFTER_SECONDS = 1


def is_unavailable(error: BaseException) -> bool:
    """Whether DynamoDB (or another AWS dependency) was throttling, failing or unreachable."""
    if isinstance(error, ConnectionError | HTTPClientError):  # timeouts, refused or dropped connections
        return True
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code") in _UNAVAILABLE_CODES
    return False


async def _not_authenticated(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": "Not authenticated"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
    )


async def _item_not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "Item not found"}, status_code=404)


async def _precondition_failed(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "Precondition Failed"}, status_code=412)


async def _validation_failed(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for that type only
        raise exc
    # FastAPI's own handler echoes every input through float/int conversion and a
    # recursive encoder: 1e400 becomes inf (not JSON), and a body nested 8,000
    # deep overflows the stack. Scalars are echoed (decimals as text); a
    # container input is the client's own body and is left out.
    errors = [
        {
            key: value
            for key, value in error.items()
            if key != "input" or not isinstance(value, dict | list | tuple)
        }
        for error in exc.errors()
    ]
    encoded: Any = jsonable_encoder(errors, custom_encoder={Decimal: str})
    return JSONResponse({"detail": encoded}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping of exceptions to responses."""
    app.add_exception_handler(NotAuthenticated, _not_authenticated)
    app.add_exception_handler(ItemNotFound, _item_not_found)
    app.add_exception_handler(PreconditionFailed, _precondition_failed)
    app.add_exception_handler(RequestValidationError, _validation_failed)


class UnhandledErrorMiddleware:
    """Turns an exception that escaped the app into 503 (AWS unavailable) or a generic 500.

    Logged once, with the stack trace and the request id the response carries.
    Starlette's ServerErrorMiddleware would answer in plain text and re-raise,
    so the error would be logged twice (by it and by Mangum or uvicorn).
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
        except Exception as error:
            rid = request_id(scope)
            if started:
                get_logger().exception("Error after the response started", extra={"request_id": rid})
                raise
            if is_unavailable(error):
                get_logger().warning(
                    "AWS dependency unavailable: %s",
                    type(error).__name__,
                    extra={"request_id": rid},
                    exc_info=True,
                )
                status, body = 503, {"detail": "Service Unavailable"}
                headers = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
            else:
                get_logger().exception(
                    "Unhandled error on %s %s", scope["method"], scope["path"], extra={"request_id": rid}
                )
                status, body = 500, {"detail": "Internal Server Error", "request_id": rid}
                headers = []
            await send_json(send, status, body, headers)
