"""How domain exceptions become responses: each is mapped here, once."""

from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.auth import NotAuthenticated
from app.store.errors import ItemNotFound, PreconditionFailed


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
