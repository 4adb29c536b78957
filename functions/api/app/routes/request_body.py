"""Bodies within their limit (413), of an accepted media type (415), parsed as exact JSON; query text."""

import json
import math
from decimal import Decimal
from typing import Any, NoReturn
from urllib.parse import unquote_to_bytes

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.types import Message

MAX_BODY_BYTES = 16 * 1024
# No field takes a number this long; Python would refuse past 4,300 digits anyway,
# with a message about its own settings.
MAX_NUMBER_DIGITS = 100
TOO_LARGE = f"Request body too large: the limit is {MAX_BODY_BYTES} bytes"


class _BodyError(ValueError):
    """A body the API refuses as JSON; the message is what the client reads."""


def _reject_constant(name: str) -> NoReturn:
    raise _BodyError(f"{name} is not valid JSON")


def _short(text: str) -> str:
    if len(text) > MAX_NUMBER_DIGITS:
        raise _BodyError(f"a number has more than {MAX_NUMBER_DIGITS} digits")
    return text


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys all differ: with a key twice, parsers disagree on which one counts."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _BodyError(f"the key {json.dumps(key)} appears twice in one object")
        obj[key] = value
    return obj


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
    """The JSON body, numbers kept as written (int, or Decimal for a fraction), or JSONDecodeError (422)."""
    try:
        # Decoded here, strictly: json.loads would guess UTF-16 or UTF-32 from the bytes.
        text = body.decode("utf-8")
        if text.startswith("\ufeff"):
            raise _BodyError("body starts with a byte order mark, which JSON text must not (RFC 8259)")
        parsed = json.loads(
            text,
            parse_float=lambda text: Decimal(_short(text)),
            parse_int=lambda text: int(_short(text)),
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as error:
        # Python's json module words its errors its own way ("Expecting value"): say where instead.
        where = f"line {error.lineno}, column {error.colno}"
        raise json.JSONDecodeError(f"body is not valid JSON at {where}", "", error.pos) from error
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
        raise HTTPException(413, TOO_LARGE, headers={"Connection": "close"})
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, TOO_LARGE, headers={"Connection": "close"})
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


JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


def media_type_problem(content_type: str | None, accepted: tuple[str, ...]) -> str | None:
    """Why a body of this Content-Type is refused (415), or None: JSON is UTF-8 (RFC 8259)."""
    if content_type is None:
        return f"Content-Type is missing: send {' or '.join(accepted)}"
    media_type, *parameters = (part.strip() for part in content_type.split(";"))
    if media_type.lower() not in accepted:
        return f"Content-Type {json.dumps(media_type)} is not accepted: send {' or '.join(accepted)}"
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return "JSON is UTF-8: the only charset accepted is utf-8"
    return None


def check_query_text(query_string: bytes) -> None:
    """Every query parameter valid UTF-8, else 422 naming it."""
    # Starlette would decode bad bytes to U+FFFD: the request would run on text the client never sent.
    errors = []
    for pair in query_string.split(b"&"):
        raw_name, _, raw_value = pair.partition(b"=")
        try:
            unquote_to_bytes(raw_name.replace(b"+", b" ")).decode("utf-8")
            unquote_to_bytes(raw_value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            message = "must be valid UTF-8 text: percent-encoded bytes here are not UTF-8"
            errors.append(
                {"type": "value_error", "loc": ("query", raw_name.decode("latin-1")), "msg": message}
            )
    if errors:
        raise RequestValidationError(errors)
