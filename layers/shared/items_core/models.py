"""The item model: what clients send and what they get back (the REST API and realtime messages)."""

import re
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    computed_field,
)

if TYPE_CHECKING:
    from pydantic.config import JsonDict

MAX_PRICE = Decimal(1_000_000_000)
MAX_QUANTITY = 1_000_000_000
MAX_TAGS = 20


# Text rules, written once as JSON Schema patterns (the OpenAPI document
# publishes them) and checked with the same expressions here.
# C0 and C1 control characters, NUL included.
_CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"
# Whitespace and the invisible characters of Unicode's Default_Ignorable_Code_Point (soft hyphen,
# zero-width space/joiners, bidi controls, word joiner, variation selectors, BOM, Hangul fillers),
# plus the blank braille pattern and the interlinear annotation marks.
_INVISIBLE = (
    "\\s\\u00ad\\u034f\\u061c\\u115f\\u1160\\u17b4\\u17b5\\u180b-\\u180f\\u200b-\\u200f"
    "\\u202a-\\u202e\\u2060-\\u206f\\u2800\\u3164\\ufe00-\\ufe0f\\ufeff\\uffa0\\ufff0-\\ufffb"
)
VISIBLE_TEXT_PATTERN = f"^[^{_CONTROL}]*[^{_CONTROL}{_INVISIBLE}][^{_CONTROL}]*$"
"""A name or tag: no control character, and at least one character that is neither blank nor invisible."""
NO_CONTROL_PATTERN = f"^[^{_CONTROL}]*$"
"""A search (query parameters ``q`` and ``tag``): no control character, as in the names and tags searched."""
DESCRIPTION_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"
"""A description: no control character but tab, line feed and carriage return."""
_CONTROLS = re.compile(f"[{_CONTROL}]")
_VISIBLE = re.compile(f"[^{_CONTROL}{_INVISIBLE}]")
# Default_Ignorable code points beyond the Basic Multilingual Plane (tag characters,
# variation selectors supplement, ...): not expressible in a portable JSON Schema pattern.
_ASTRAL_INVISIBLE = re.compile("[\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0000-\\U000e0fff]")


def _visible_text(value: str) -> str:
    if _CONTROLS.search(value):
        raise ValueError("must not contain control characters (U+0000-U+001F, U+007F-U+009F)")
    visible = [char for char in _VISIBLE.findall(value) if not _ASTRAL_INVISIBLE.match(char)]
    if not visible:
        raise ValueError("must not be blank: it has only whitespace or invisible characters")
    return value


def _description_text(value: str) -> str:
    if any(char not in "\t\n\r" for char in _CONTROLS.findall(value)):
        raise ValueError("must not contain control characters other than tab, line feed and carriage return")
    return value


def _json_number(value: Any) -> Any:
    # The request parser turns JSON numbers into int or Decimal; anything else
    # (a string, a boolean) was not a JSON number and must not be coerced.
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError("must be a JSON number")
    return value


def _distinct(tags: list[str]) -> list[str]:
    if len(set(tags)) != len(tags):
        raise ValueError("tags must be distinct")
    return tags


def _price_to_json(price: Decimal) -> int | float:
    # At most 12 significant digits (<= 1e9 with 2 decimals): a float's shortest
    # repr prints exactly these digits, so the JSON number is the stored value.
    return int(price) if price == price.to_integral_value() else float(price)


def _whole_number(value: Any) -> Any:
    # A JSON number with a zero fraction (7.0, 7e2) is an integer in JSON Schema;
    # the request parser hands it over as a Decimal. A fraction, a string or a
    # boolean stays an error (strict mode refuses them).
    if isinstance(value, Decimal) and value.is_finite():
        if value.adjusted() > 18:  # far beyond any limit; never expanded into a huge int
            raise ValueError("must be at most 1000000000")
        if value != value.to_integral_value():
            raise ValueError("must be a whole number")
        return int(value)
    return value


Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_visible_text),
    Field(json_schema_extra={"pattern": VISIBLE_TEXT_PATTERN}, examples=["Garden hose, 25 m"]),
]
Description = Annotated[
    str,
    StringConstraints(max_length=2000),
    AfterValidator(_description_text),
    Field(json_schema_extra={"pattern": DESCRIPTION_PATTERN}, examples=["Kink-free, with brass fittings."]),
]
Price = Annotated[
    Decimal,
    BeforeValidator(_json_number),
    # Bounds as int: pydantic writes them into messages, and Decimal's would read "Decimal('0')".
    Field(strict=False, ge=0, le=int(MAX_PRICE), decimal_places=2, allow_inf_nan=False),
    PlainSerializer(_price_to_json, return_type=float, when_used="json"),
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "maximum": int(MAX_PRICE),
            "multipleOf": 0.01,
            "description": "At most 2 decimal places; parsed and stored exactly.",
            "examples": [24.99],
        }
    ),
]
# The validator after Field, so the schema keeps minimum and maximum.
Quantity = Annotated[int, Field(ge=0, le=MAX_QUANTITY, examples=[3]), BeforeValidator(_whole_number)]
Tag = Annotated[
    str,
    StringConstraints(min_length=1, max_length=50),
    AfterValidator(_visible_text),
    Field(json_schema_extra={"pattern": VISIBLE_TEXT_PATTERN}, examples=["garden"]),
]
Tags = Annotated[
    list[Tag],
    Field(max_length=MAX_TAGS, json_schema_extra={"uniqueItems": True}, examples=[["garden", "outdoor"]]),
    AfterValidator(_distinct),
]

_EXAMPLE_ITEM: "JsonDict" = {
    "id": 42,
    "name": "Garden hose, 25 m",
    "description": "Kink-free, with brass fittings.",
    "price": 24.99,
    "quantity": 3,
    "tags": ["garden", "outdoor"],
    "version": 2,
    "created_at": "2026-11-30T09:15:00Z",
    "updated_at": "2026-12-01T17:40:12Z",
    "etag": '"42-2"',
}
# Whole examples for the docs pages (Swagger UI, ReDoc) and generated clients; tests/test_openapi_examples.py
# validates every example in the document against its schema.
_REQUEST_CONFIG = ConfigDict(strict=True, extra="forbid")


def _omit_default(schema: "JsonDict") -> None:
    # A request field's `default` reads as "always present" to client generators (openapi-typescript
    # makes such a field required), so clients would have to send what they may omit: the
    # description says it instead.
    schema.pop("default", None)


class ItemCreate(BaseModel):
    """Body of POST /items and PUT /items/{item_id}: every client-owned field."""

    model_config = ConfigDict(
        **_REQUEST_CONFIG,
        json_schema_extra={
            "examples": [{k: _EXAMPLE_ITEM[k] for k in ("name", "description", "price", "quantity", "tags")}]
        },
    )

    name: Name
    description: Description | None = None
    price: Price
    quantity: Quantity = Field(default=0, description="0 when omitted.", json_schema_extra=_omit_default)
    tags: Tags = Field(default_factory=list)


class ItemPatch(BaseModel):
    """Body of PATCH /items/{item_id}, a JSON Merge Patch (RFC 7396)."""

    model_config = ConfigDict(
        **_REQUEST_CONFIG, json_schema_extra={"examples": [{"price": 19.95, "tags": ["garden", "sale"]}]}
    )

    # Absent means "unchanged". `name` and `price` have no default to return
    # to, so an explicit null fails the type check (422) instead of resetting.
    name: Name = Field(default=None)  # type: ignore[assignment]
    description: Description | None = None
    price: Price = Field(default=None)  # type: ignore[assignment]
    quantity: Quantity | None = None
    tags: Tags | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, with null replaced by the field's default."""
        defaults: dict[str, Any] = {"description": None, "quantity": 0, "tags": []}
        return {
            field: defaults[field] if getattr(self, field) is None else getattr(self, field)
            for field in self.model_fields_set
        }


class ItemPublic(BaseModel):
    """An item as the API returns it."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_ITEM]})

    id: int = Field(ge=1, le=2**53 - 1)  # app.store.items.MAX_ITEM_ID
    name: str
    description: str | None
    price: Price
    quantity: int
    tags: list[str]
    version: int = Field(ge=1)
    created_at: datetime
    updated_at: datetime

    @computed_field(  # type: ignore[prop-decorator]
        description="The `ETag` of this version, quotes included: send it as `If-Match` to change exactly"
        " this version, or as `If-None-Match` to read only a newer one.",
        examples=['"42-2"'],
    )
    @property
    def etag(self) -> str:
        """A strong entity tag (RFC 9110) that changes with every version of the item."""
        return f'"{self.id}-{self.version}"'


class ItemPage(BaseModel):
    """One page of a listing; follow `next_cursor` until it is null."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"items": [_EXAMPLE_ITEM], "next_cursor": "AQAAAAAAAAAqdgLxYIVLvoJttEr40PMGyA"}]
        }
    )

    items: list[ItemPublic]
    next_cursor: str | None


class ValidationIssue(BaseModel):
    """One problem with a request: where it is (`loc`), what is wrong (`msg`), which rule (`type`)."""

    # Documentation (the error schemas of /openapi.json) and tests: built on first use, not at import.
    model_config = ConfigDict(defer_build=True)

    loc: list[str | int] = Field(examples=[["body", "price"]])
    msg: str = Field(examples=["Input should be less than or equal to 1000000000"])
    type: str = Field(examples=["less_than_equal"])
    input: Any = Field(default=None, description="The value refused, when it is short enough to echo.")
    ctx: dict[str, Any] | None = Field(
        default=None, description='The rule\'s parameters, e.g. `{"le": 1000000000}`.'
    )


class Error(BaseModel):
    """Every error answer: `detail`, a sentence or (422) one entry per problem; a 500 adds `request_id`."""

    model_config = ConfigDict(
        defer_build=True,  # as ValidationIssue
        json_schema_extra={
            "examples": [
                {"detail": "Item not found"},
                {
                    "detail": [
                        {
                            "loc": ["body", "price"],
                            "msg": "Input should be less than or equal to 1000000000",
                            "type": "less_than_equal",
                            "input": 2000000000,
                            "ctx": {"le": 1000000000},
                        }
                    ]
                },
                {"detail": "Internal Server Error", "request_id": "c0ffee00-1234-4abc-9def-0123456789ab"},
            ]
        },
    )

    detail: str | list[ValidationIssue]
    request_id: str | None = Field(default=None, description="On a 500: quote it when reporting the failure.")
