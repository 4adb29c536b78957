"""How domain exceptions become responses."""

from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.auth import Forbidden, NotAuthenticated
from app.limits import RateLimited
from app.routes.idempotency import Replay, replay_response
from app.routes.request_body import read_limited
from app.store.errors import ItemNotFound, ItemsQuotaFull, PreconditionFailed, WriteConflict
from items_core.dynamodb_errors import Answer, answer
from items_core.models import Error, ValidationIssue

# What each of DynamoDB's answers (items_core.dynamodb_errors) sends the client.
_RETRY_AFTER = {"Retry-After": "1"}
_DYNAMODB_ANSWERS = {
    Answer.UNAVAILABLE: (503, "Service Unavailable", _RETRY_AFTER),
    Answer.CONFLICT: (409, WriteConflict.detail, _RETRY_AFTER),
    Answer.STORAGE_FULL: (507, "The owner's storage is full; nothing was changed.", {}),
}

# The error bodies' models, documented by reference: a `"model"` in a route's `responses`
# would make FastAPI build a validator per route and status at import (about 30 of them),
# a cold-start cost for documentation only. add_error_schemas puts them in the document.
ERROR_MODELS = (Error, ValidationIssue)


def documented_error(description: str, detail: Any, **extra: Any) -> dict[str, Any]:
    """A `responses` entry: the one error shape, by reference, with the example `{"detail": detail}`."""
    schema = {"$ref": f"#/components/schemas/{Error.__name__}"}
    content = {"application/json": {"schema": schema, "example": {"detail": detail}}}
    return {"description": description, "content": content, **extra}


def retry_after_header(description: str = "Seconds to wait before retrying.") -> dict[str, Any]:
    """The documented `Retry-After` header of a response."""
    return {"Retry-After": {"description": description, "schema": {"type": "integer", "examples": [1]}}}


def add_error_schemas(app: FastAPI) -> None:
    """Generate the OpenAPI document (on its first request) with the error models' schemas."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for model in ERROR_MODELS:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, definition in schema.pop("$defs", {}).items():
                    schemas.setdefault(name, definition)
                schemas.setdefault(model.__name__, schema)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


async def _not_authenticated(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": "Not authenticated"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
    )


async def _forbidden(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=403)


async def _item_not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "Item not found"}, status_code=404)


async def _precondition_failed(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "Precondition Failed"}, status_code=412)


async def _rate_limited(request: Request, exc: Exception) -> JSONResponse:
    """An owner's allowance used up (app.limits), wherever the request was refused: 429, Retry-After."""
    if not isinstance(exc, RateLimited):  # registered for that type only
        raise exc
    return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after)})


async def _items_quota_full(request: Request, exc: Exception) -> JSONResponse:
    detail = exc.detail if isinstance(exc, ItemsQuotaFull) else "Forbidden"
    return JSONResponse({"detail": detail}, status_code=403)


async def _write_conflict(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": WriteConflict.detail}, status_code=409, headers=_RETRY_AFTER)


async def _aws_answered(request: Request, exc: Exception) -> JSONResponse:
    """An AWS call's deliberate answers (DynamoDB's, the cursor key's read): 503, 409, 507; else a 500."""
    kind = answer(exc)
    if kind is None or kind not in _DYNAMODB_ANSWERS:
        raise exc
    from app.observability import get_logger

    get_logger().warning(
        "AWS answered %s: %s",
        kind.name,
        type(exc).__name__,
        extra={"request_id": getattr(request.state, "request_id", None)},
        exc_info=True,
    )
    status, detail, headers = _DYNAMODB_ANSWERS[kind]
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def encodable(value: Any) -> Any:
    """`value` with every string made encodable as UTF-8: a lone surrogate becomes its escape text."""
    # JSON's "\ud800" is a lone surrogate, which UTF-8 cannot encode: echoed, it would turn a 422 into a 500.
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {encodable(key): encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(item) for item in value]
    return value


def _api_error(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error as the API reports it: no container input, no Python exception object."""
    shown = {
        key: value
        for key, value in error.items()
        if key != "input" or not isinstance(value, dict | list | tuple)
    }
    context = shown.get("ctx")
    if isinstance(context, dict) and isinstance(context.get("error"), Exception):
        # The message is already in `msg`; the exception object itself would encode as {}.
        context = {key: value for key, value in context.items() if key != "error"}
        if context:
            shown["ctx"] = context
        else:
            del shown["ctx"]
    if shown.get("type") == "string_unicode":
        shown["msg"] = (
            "Input should be valid Unicode text: it contains a lone UTF-16 surrogate (\\ud800-\\udfff)"
        )
    shown["msg"] = _in_json_words(str(shown.get("msg", "")))
    if isinstance(shown.get("ctx"), dict) and shown["ctx"].get("field_type") == "List":
        shown["ctx"] = {**shown["ctx"], "field_type": "Array"}
    return shown


# pydantic speaks Python; a client reads JSON. Its messages, in the API's words.
_PYTHON_WORDS = (
    ("Value error, ", ""),
    ("Decimal input should have", "Number should have"),
    ("a valid dictionary or object to extract fields from", "a JSON object"),
    ("a valid dictionary", "a JSON object"),
    ("a valid list", "a JSON array"),
    ("List should have", "Array should have"),
    (" after validation", ""),
)


def _in_json_words(message: str) -> str:
    for python, json_words in _PYTHON_WORDS:
        message = message.replace(python, json_words)
    return message


async def _validation_failed(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for that type only
        raise exc
    # FastAPI's own handler echoes every input through float/int conversion and a
    # recursive encoder: 1e400 becomes inf (not JSON), and a body nested 8,000
    # deep overflows the stack. Scalars are echoed (decimals as text); a
    # container input is the client's own body and is left out.
    errors = [_api_error(error) for error in exc.errors()]
    encoded: Any = encodable(jsonable_encoder(errors, custom_encoder={Decimal: str}))
    return JSONResponse({"detail": encoded}, status_code=422)


_METHOD_ORDER = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _serves(request: Request, method: str) -> bool:
    probe = {**request.scope, "type": "http", "method": method}
    return any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes)


def allowed_methods(request: Request) -> list[str]:
    """Every method of this path: its routes', HEAD wherever GET (app.edge), and OPTIONS."""
    methods = [method for method in _METHOD_ORDER if _serves(request, method)]
    if "GET" in methods:
        methods.insert(1, "HEAD")
    return [*methods, "OPTIONS"]


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):  # registered for that type only
        raise exc
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # Starlette names the methods of one route; RFC 9110 wants the path's
        headers["Allow"] = ", ".join(allowed_methods(request))
        if request.method == "OPTIONS":
            # OPTIONS (RFC 9110 9.3.7) on any path the API serves: what it allows. Deployed, a
            # browser's CORS preflight arrives here too and API Gateway adds the CORS headers.
            # Its body is capped like every other method's (none is expected).
            try:
                await read_limited(request)
            except StarletteHTTPException as too_large:
                return JSONResponse({"detail": too_large.detail}, status_code=413, headers=too_large.headers)
            return Response(status_code=204, headers=headers)
    if exc.status_code in {204, 304}:
        return Response(status_code=exc.status_code, headers=headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping of exceptions to responses."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(NotAuthenticated, _not_authenticated)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(ItemNotFound, _item_not_found)
    app.add_exception_handler(PreconditionFailed, _precondition_failed)
    app.add_exception_handler(WriteConflict, _write_conflict)
    app.add_exception_handler(ItemsQuotaFull, _items_quota_full)
    app.add_exception_handler(RateLimited, _rate_limited)
    app.add_exception_handler(Replay, replay_response)
    app.add_exception_handler(ClientError, _aws_answered)
    app.add_exception_handler(BotoCoreError, _aws_answered)
    app.add_exception_handler(RequestValidationError, _validation_failed)
