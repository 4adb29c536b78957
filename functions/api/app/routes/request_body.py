"""Request bodies parsed as exact JSON: numbers with a fraction become Decimal, never float."""

import json
import math
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any, NoReturn

from fastapi import Request, Response
from fastapi.routing import APIRoute

# No field takes a number this long; Python would refuse past 4,300 digits anyway,
# with a message about its own settings.
MAX_NUMBER_DIGITS = 100


class _BodyError(ValueError):
    """A body the API refuses as JSON; the message is what the client reads."""


def _reject_constant(name: str) -> NoReturn:
    raise _BodyError(f"{name} is not valid JSON")


def _short(text: str) -> str:
    if len(text) > MAX_NUMBER_DIGITS:
        raise _BodyError(f"a number has more than {MAX_NUMBER_DIGITS} digits")
    return text


def _parse_int(text: str) -> int:
    return int(_short(text))


def _parse_decimal(text: str) -> Decimal:
    return Decimal(_short(text))


def _describe(error: Exception) -> str:
    """What was wrong with the body, in the API's words (never Python's)."""
    if isinstance(error, _BodyError):
        return str(error)
    if isinstance(error, RecursionError):
        return "JSON is nested too deeply"
    if isinstance(error, UnicodeError):
        return "body is not valid UTF-8"
    return "body is not valid JSON"


class ExactJSONRequest(Request):
    """A request whose JSON body keeps `0.10000000000000000555` as written."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = json.loads(
                    body, parse_float=_parse_decimal, parse_int=_parse_int, parse_constant=_reject_constant
                )
            except json.JSONDecodeError:
                raise
            except (ValueError, RecursionError) as error:
                # NaN/Infinity, invalid UTF-8, overlong numbers, deep nesting: all
                # malformed JSON to the client, so FastAPI answers 422.
                raise json.JSONDecodeError(_describe(error), "", 0) from error
            if isinstance(self._json, Decimal):
                # A whole body that is one fractional number: FastAPI validates bodies with
                # from_attributes, which would read a Decimal *object* as a model with no
                # fields (a PATCH of nothing, 200). As a float (or its text, beyond float's
                # range) it is refused like any other non-object body: 422.
                as_float = float(self._json)
                self._json = as_float if math.isfinite(as_float) else str(self._json)
        return self._json


class ExactJSONRoute(APIRoute):
    """An APIRoute that parses JSON bodies with ExactJSONRequest."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:  # no body to parse (GET, DELETE): no wrapper either
            return handler

        async def exact_json_handler(request: Request) -> Response:
            return await handler(ExactJSONRequest(request.scope, request.receive))

        return exact_json_handler
