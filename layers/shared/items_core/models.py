"""The item model: what clients send and what they get back (the REST API and realtime messages)."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)

MAX_PRICE = Decimal(1_000_000_000)
MAX_QUANTITY = 1_000_000_000
MAX_TAGS = 20


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
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


Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_not_blank)]
Description = Annotated[str, StringConstraints(max_length=2000)]
Price = Annotated[
    Decimal,
    BeforeValidator(_json_number),
    Field(strict=False, ge=Decimal(0), le=MAX_PRICE, decimal_places=2, allow_inf_nan=False),
    PlainSerializer(_price_to_json, return_type=float, when_used="json"),
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "maximum": int(MAX_PRICE),
            "description": "At most 2 decimal places; parsed and stored exactly.",
        }
    ),
]
Quantity = Annotated[int, Field(ge=0, le=MAX_QUANTITY)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=50), AfterValidator(_not_blank)]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(_distinct)]

_REQUEST_CONFIG = ConfigDict(strict=True, extra="forbid")


class ItemCreate(BaseModel):
    """Body of POST /items and PUT /items/{item_id}: every client-owned field."""

    model_config = _REQUEST_CONFIG

    name: Name
    description: Description | None = None
    price: Price
    quantity: Quantity = 0
    tags: Tags = Field(default_factory=list)


class ItemPatch(BaseModel):
    """Body of PATCH /items/{item_id}, a JSON Merge Patch (RFC 7396)."""

    model_config = _REQUEST_CONFIG

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

    id: int = Field(ge=1)
    name: str
    description: str | None
    price: Price
    quantity: int
    tags: list[str]
    version: int = Field(ge=1)
    created_at: datetime
    updated_at: datetime


class ItemPage(BaseModel):
    """One page of a listing; follow `next_cursor` until it is null."""

    items: list[ItemPublic]
    next_cursor: str | None


class ErrorDetail(BaseModel):
    """An error that is not about one field: `{"detail": "Item not found"}`."""

    detail: str


class InternalError(BaseModel):
    """An unexpected failure: generic on purpose; quote `request_id` when reporting it."""

    detail: str
    request_id: str
