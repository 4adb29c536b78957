"""Request bodies parsed as exact JSON: numbers with a fraction become Decimal, never float."""

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any, NoReturn

from fastapi import Request, Response
from fastapi.routing import APIRoute


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


class ExactJSONRequest(Request):
    """A request whose JSON body keeps `0.10000000000000000555` as written."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
            except json.JSONDecodeError:
                raise
            except (ValueError, RecursionError) as error:
                # NaN/Infinity, invalid UTF-8, integers too long to convert, deep
                # nesting: all malformed JSON to the client, so FastAPI answers 422.
                raise json.JSONDecodeError(str(error), "", 0) from error
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
