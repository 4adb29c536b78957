"""Request bodies: read up to the limit (413 beyond it), then parsed as exact JSON (numbers with a fraction
become Decimal, never float)."""

import json
import math
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any, NoReturn

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.types import Message

MAX_BODY_BYTES = 16 * 1024
# No field takes a number this long; Python would refuse past 4,300 digits anyway,
# with a message about its own settings.
MAX_NUMBER_DIGITS = 100
_TOO_LARGE = f"Request body too large: the limit is {MAX_BODY_BYTES} bytes"


class _BodyError(ValueError):
    """A body the API refuses as JSON; the message is what the client reads."""


def _reject_constant(name: str) -> NoReturn:
    raise _BodyError(f"{name} is not valid JSON")


def _short(text: str) -> str:
    if len(text) > MAX_NUMBER_DIGITS:
        raise _BodyError(f"a number has more than {MAX_NUMBER_DIGITS} digits")
    return text


def _describe(error: Exception) -> str:
    """What was wrong with the body, in the API's words (never Python's)."""
    if isinstance(error, _BodyError):
        return str(error)
    if isinstance(error, RecursionError):
        return "JSON is nested too deeply"
    if isinstance(error, UnicodeError):
        return "body is not valid UTF-8"
    return "body is not valid JSON"


def parse_exact_json(body: bytes) -> Any:
    """The JSON body with every number kept as written: int, or Decimal for a fraction.

    NaN/Infinity, invalid UTF-8, overlong numbers and deep nesting are malformed
    JSON to the client (json.JSONDecodeError, which FastAPI answers with a 422).
    """
    try:
        parsed = json.loads(
            body,
            parse_float=lambda text: Decimal(_short(text)),
            parse_int=lambda text: int(_short(text)),
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as error:
        raise json.JSONDecodeError(_describe(error), "", 0) from error
    if isinstance(parsed, Decimal):
        # A whole body that is one fractional number: FastAPI validates bodies with
        # from_attributes, which would read a Decimal *object* as a model with no
        # fields. As a float (or its text, beyond float's range) it is refused like
        # any other body that is not an object: 422.
        as_float = float(parsed)
        return as_float if math.isfinite(as_float) else str(parsed)
    return parsed


async def read_limited(request: Request) -> bytes:
    """The whole body, or a 413 as soon as it (or its declared length) passes MAX_BODY_BYTES."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise HTTPException(413, _TOO_LARGE, headers={"Connection": "close"})
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, _TOO_LARGE, headers={"Connection": "close"})
    return body


class ExactJSONRequest(Request):
    """A request whose body was read within the limit and whose JSON keeps numbers exact."""

    def __init__(self, request: Request, body: bytes) -> None:
        pending = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> Message:
            return pending.pop() if pending else await request.receive()

        super().__init__(request.scope, receive)

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_exact_json(await self.body())
        return self._json


class ExactJSONRoute(APIRoute):
    """An APIRoute whose body, where it has one, is read within the limit and parsed as exact JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:  # no body to read (GET, DELETE): none is ever read
            return handler

        async def exact_json_handler(request: Request) -> Response:
            return await handler(ExactJSONRequest(request, await read_limited(request)))

        return exact_json_handler
