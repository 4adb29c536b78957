"""The FastAPI dependencies, as `Annotated` aliases that route signatures use."""

import json
import re
import secrets
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import Depends, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPBearer
from pydantic import BeforeValidator

from app.auth import authenticate
from app.limits import WINDOWS, Kind, OwnerRates, rows_charge
from app.preconditions import TooManyVersions, parse_if_match
from app.settings import LAYOUT_READ_MAX_ATTEMPTS, get_settings
from app.store.cursor import CursorSigner
from app.store.idempotency import EarlierRecords, IdempotencyStore
from app.store.items import MAX_ITEM_ID, AnyVersion, ItemStore
from items_core.aws_clients import botocore_session, create_client
from items_core.bearer import bearer_token
from items_core.layout import LayoutReader

if TYPE_CHECKING:
    from botocore.session import Session
    from mypy_boto3_dynamodb import DynamoDBClient


# FastAPI runs a plain `def` dependency in a worker thread (under Mangum, a new thread per
# request); the dependencies below hand out objects cached per container, so they are
# `async def` and stay on the event loop. In Lambda the item store and its client exist
# before the first request (app.main creates them during INIT), elsewhere the first request
# creates them on the loop; the layout row's client is made by the first read of the layout
# (app.blocking may run it in a worker thread). Client creation holds _CREATING: a botocore
# session is not thread-safe.


_CREATING = threading.Lock()


@lru_cache
def get_botocore_session() -> "Session":
    """One botocore session per container, so every client shares its loaded service models."""
    return botocore_session()


def aws_client(service: str, *, max_attempts: int | None = None) -> Any:
    """A client of `service` with the retry budget (or `max_attempts`) and timeouts of the settings."""
    settings = get_settings()
    with _CREATING:
        return create_client(
            service,
            max_attempts=settings.dynamodb_max_attempts if max_attempts is None else max_attempts,
            connect_timeout=settings.dynamodb_connect_timeout,
            read_timeout=settings.dynamodb_read_timeout,
            validate_params=settings.aws_validate_params,
            endpoint_url=settings.dynamodb_endpoint_url if service == "dynamodb" else None,
            session=get_botocore_session(),
        )


@lru_cache
def get_dynamodb_client() -> "DynamoDBClient":
    """One DynamoDB client per container (in Lambda created during INIT by app.main, else on first use)."""
    return cast("DynamoDBClient", aws_client("dynamodb"))


@lru_cache
def get_stack_key() -> bytes:
    """The stack's secret key, read once per container: the stack's secret, a setting, or random."""
    settings = get_settings()
    if settings.cursor_secret_arn:
        # One read per container; a key change reaches every container with the next deploy.
        secret = aws_client("secretsmanager").get_secret_value(SecretId=settings.cursor_secret_arn)
        return str(json.loads(secret["SecretString"])["current"]).encode()
    if settings.cursor_signing_key:
        return settings.cursor_signing_key.get_secret_value().encode()
    # Tests: cursors stay valid for the life of this process.
    return secrets.token_bytes(32)


@lru_cache
def get_cursor_signer() -> CursorSigner:
    """The cursor signer, keyed with the stack's key."""
    return CursorSigner(get_stack_key())


async def cursor_signer_dependency() -> CursorSigner:
    """The container's cursor signer."""
    return get_cursor_signer()


CursorSignerDep = Annotated[CursorSigner, Depends(cursor_signer_dependency)]


@lru_cache
def get_single_attempt_client() -> "DynamoDBClient":
    """The single-attempt client, for calls a request may skip: layout reads, rate leases, count updates."""
    return cast("DynamoDBClient", aws_client("dynamodb", max_attempts=LAYOUT_READ_MAX_ATTEMPTS))


@lru_cache
def get_owner_rates() -> OwnerRates:
    """This container's leases of each owner's request allowance."""
    settings = get_settings()
    per_window: dict[Kind, int] = {
        "reads": settings.owner_reads_per_second * WINDOWS["reads"],
        "writes": settings.owner_write_units_per_second * WINDOWS["writes"],
        "keys": settings.owner_idempotency_keys_per_hour,
    }
    return OwnerRates(get_single_attempt_client, settings.idempotency_table_name, per_window)


@lru_cache
def get_layout_reader() -> LayoutReader:
    """What the items table's layout row says, cached per container for a few seconds."""
    return LayoutReader(get_single_attempt_client, get_settings().table_name)


@lru_cache
def get_item_store() -> ItemStore:
    """The item store, bound to the configured table, once per container."""
    settings = get_settings()
    return ItemStore(
        get_dynamodb_client(),
        settings.table_name,
        get_layout_reader(),
        items_quota=settings.owner_items_stored,
        single_attempt_client=get_single_attempt_client,
    )


@lru_cache
def get_idempotency_store() -> IdempotencyStore:
    """The Idempotency-Key records, once per container (and, after an upgrade, the earlier ones)."""
    settings = get_settings()
    earlier = EarlierRecords(settings.table_name, get_layout_reader)
    return IdempotencyStore(get_dynamodb_client(), settings.idempotency_table_name, earlier)


async def item_store_dependency() -> ItemStore:
    """The container's item store."""
    return get_item_store()


ItemStoreDep = Annotated[ItemStore, Depends(item_store_dependency)]


# One dependency, not a scheme plus a function: every request saves a resolution and a credentials model.
class BearerOwner(HTTPBearer):
    """The authenticated owner (401 otherwise), kept on request.state.owner, documenting the scheme."""

    def __init__(self) -> None:
        super().__init__(
            auto_error=False,
            scheme_name="HTTPBearer",
            description=(
                "An OAuth access token (JWT) from the configured issuer with the API's scope "
                "(default items-api/items); ID tokens are refused."
            ),
        )

    async def __call__(self, request: Request) -> str:  # type: ignore[override]
        known = getattr(request.state, "owner", None)
        if known is not None:  # already authenticated by the route class (app/routes/owner_route.py)
            return str(known)
        token = bearer_token(request.headers.get("authorization"))
        owner = authenticate(request.scope, token)
        request.state.owner = owner  # for the request log line, which records only a hash of it
        return owner


get_owner = BearerOwner()
CurrentOwner = Annotated[str, Depends(get_owner)]


async def rows_charge_dependency(request: Request, owner: CurrentOwner) -> Callable[[int], None] | None:
    """The write's charge for rows its body did not announce (rows_charge)."""
    return rows_charge(get_owner_rates(), request, owner)


RowsCharge = Annotated[Callable[[int], None] | None, Depends(rows_charge_dependency)]
_CANONICAL_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def canonical_int(maximum: int) -> BeforeValidator:
    """A path or query integer as the API writes it: decimal digits, no sign, leading zero or space."""

    # int() also takes "01", " 1", "1_0" and "+1": each spelling would name the same item (and cache entry).
    def check(value: Any) -> Any:
        if isinstance(value, str):
            if not _CANONICAL_DECIMAL.fullmatch(value):
                raise ValueError(
                    "must be written in decimal digits, without sign, leading zero or space (e.g. 42)"
                )
            if len(value) > len(str(maximum)) or int(value) > maximum:
                raise ValueError(f"must be at most {maximum}")
        return value

    return BeforeValidator(check)


ItemId = Annotated[
    int,
    Path(
        ge=1,
        le=MAX_ITEM_ID,
        description="The item's id: decimal digits, no leading zero, at least 1.",
        examples=[42],
    ),
    canonical_int(MAX_ITEM_ID),  # after Path, so the schema keeps minimum and maximum
]


async def get_if_match(
    item_id: ItemId,
    if_match: Annotated[
        str | None,
        Header(
            description="Only change the item if its ETag is one of these (or `*`); else 412."
            " At most 100 of this item's ETags.",
            examples=['"42-2"'],
        ),
    ] = None,
) -> list[int] | AnyVersion | None:
    """The item versions the client's If-Match accepts, None without the header."""
    try:
        return parse_if_match(if_match, item_id)
    except TooManyVersions as error:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("header", "if-match"), "msg": str(error)}]
        ) from error


IfMatch = Annotated[list[int] | AnyVersion | None, Depends(get_if_match)]
