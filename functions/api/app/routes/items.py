"""CRUD and listing of the caller's items."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError

from app.blocking import run_blocking
from app.dependencies import (
    CurrentOwner,
    CursorSignerDep,
    IfMatch,
    ItemId,
    ItemStoreDep,
    RowsCharge,
    canonical_int,
)
from app.preconditions import etag, if_none_match_hits
from app.routes.errors import documented_error, retry_after_header
from app.routes.idempotency import IdempotencyKey, IdempotentRoute
from app.routes.request_body import TOO_LARGE
from app.store.cursor import MAX_CURSOR_LENGTH, CursorSigner, InvalidCursor
from app.store.errors import ItemsQuotaFull, WriteConflict
from items_core.models import NO_CONTROL_PATTERN, ItemCreate, ItemPage, ItemPatch, ItemPublic

Responses = dict[int | str, dict[str, Any]]


_ETAG_HEADER = {
    "ETag": {
        "description": "Strong entity tag of this version.",
        "schema": {"type": "string", "examples": ['"42-2"']},
    }
}
_LOCATION_HEADER = {
    "Location": {
        "description": "Path of the new item.",
        "schema": {"type": "string", "examples": ["/items/42"]},
    }
}
_FORBIDDEN = (
    "A valid token that may not use the API: not an access token with the API's scope (an ID"
    " token), or an owner id that cannot be stored (over 1,024 bytes of UTF-8, or not valid Unicode)."
)
_FORBIDDEN_EXAMPLE = (
    "The token's owner claim (sub) is 2100 bytes long; at most 1024 bytes of UTF-8 can be stored"
)
_QUOTA: Responses = {
    403: documented_error(
        f"{_FORBIDDEN} Or the owner already stores as many items as its quota allows (template"
        " parameter OwnerItemsStored): nothing was created; delete items to make room.",
        ItemsQuotaFull(10000).detail,
    )
}
_COMMON: Responses = {
    401: documented_error(
        "No verified principal (missing or invalid token).",
        "Not authenticated",
        headers={"WWW-Authenticate": {"schema": {"type": "string", "examples": ["Bearer"]}}},
    ),
    403: documented_error(_FORBIDDEN, _FORBIDDEN_EXAMPLE),
    422: documented_error(
        "The request is invalid as sent: one `detail` entry per problem; nothing ran.",
        [
            {
                "type": "less_than_equal",
                "loc": ["body", "price"],
                "msg": "Input should be less than or equal to 1000000000",
                "input": 2000000000,
                "ctx": {"le": 1000000000},
            }
        ],
    ),
    413: documented_error("Request body over 16 KB (on any method).", TOO_LARGE),
    429: documented_error(
        "This owner's reads or write units for the current 10-second window, or its Idempotency-Key"
        " requests for the hour, are used up (template parameters OwnerReadsPerSecond,"
        " OwnerWriteUnitsPerSecond, OwnerIdempotencyKeysPerHour); nothing was read or written;"
        " retry after `Retry-After` seconds.",
        "Too many requests: this owner may make 50 reads a second (averaged over 10 s); retry after 4 s",
        headers=retry_after_header(),
    ),
    500: documented_error("Unexpected failure (logged with the same request id).", "Internal Server Error"),
    503: documented_error(
        "DynamoDB is throttling or unavailable; retry after `Retry-After` seconds.",
        "Service Unavailable",
        headers=retry_after_header(),
    ),
}
_NOT_FOUND: Responses = {404: documented_error("The caller has no item with this id.", "Item not found")}
_KEY_RUNNING = "A request with this Idempotency-Key is still in progress"
_IDEMPOTENT: Responses = {
    409: documented_error(f"{_KEY_RUNNING}.", _KEY_RUNNING, headers=retry_after_header()),
}
# Writes to an existing item: the key's 409, or another write got in first.
_ITEM_WRITE: Responses = {
    409: documented_error(
        f"{_KEY_RUNNING}, or another request changed the item while this one was writing it (nothing"
        " changed); retry after `Retry-After` seconds.",
        WriteConflict.detail,
        headers=retry_after_header(),
    ),
}
_PRECONDITION: Responses = {
    412: documented_error(
        "If-Match names no current version of the item; nothing changed.", "Precondition Failed"
    )
}
_BODY: Responses = {
    415: documented_error(
        "Content-Type is not a media type this route accepts (JSON, as UTF-8).",
        'Content-Type "text/plain" is not accepted: send application/json',
    ),
}

router = APIRouter(prefix="/items", tags=["items"], route_class=IdempotentRoute, responses=_COMMON)


def _continue_after(signer: CursorSigner, cursor: str | None, owner: str, q: str, tag: str) -> int:
    if cursor is None:
        return 0
    try:
        return signer.decode(cursor, owner=owner, q=q, tag=tag)
    except InvalidCursor as error:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "cursor"),
                    "msg": "cursor is not valid for this listing; start again without a cursor",
                    "input": cursor,
                }
            ]
        ) from error


def _item_response(item: ItemPublic, status_code: int = status.HTTP_200_OK, **headers: str) -> Response:
    """The item as the route's `response_model` describes it, with its ETag."""
    # A Response, serialised by pydantic: returning the model would make FastAPI validate our own row again.
    return Response(
        item.model_dump_json(),
        status_code=status_code,
        media_type="application/json",
        headers={"ETag": etag(item), **headers},
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ItemPublic,
    dependencies=[IdempotencyKey],
    responses={
        **_IDEMPOTENT,
        **_BODY,
        **_QUOTA,
        201: {
            "headers": {
                **_ETAG_HEADER,
                **_LOCATION_HEADER,
            }
        },
    },
)
async def create_item(
    item: ItemCreate, owner: CurrentOwner, store: ItemStoreDep, request: Request
) -> Response:
    """Create an item; `Location` is the path of the new item."""
    created = await run_blocking(store.create, owner, item)
    location = request.url_for("get_item", item_id=created.id).path
    return _item_response(created, status.HTTP_201_CREATED, Location=location)


@router.get("")
async def list_items(
    owner: CurrentOwner,
    store: ItemStoreDep,
    signer: CursorSignerDep,
    q: Annotated[
        str,
        Query(
            max_length=200,
            pattern=NO_CONTROL_PATTERN,
            description="Case-insensitive substring of the name.",
            examples=["hose"],
        ),
    ] = "",
    tag: Annotated[
        str,
        Query(
            max_length=50,
            pattern=NO_CONTROL_PATTERN,
            description="Only items carrying this exact tag.",
            examples=["garden"],
        ),
    ] = "",
    limit: Annotated[
        int,
        Query(ge=1, le=100, description="Most items on this page, 1 to 100.", examples=[20]),
        canonical_int(100),
    ] = 20,
    cursor: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR_LENGTH,
            description="`next_cursor` of the previous page.",
            examples=["AQAAAAAAAAAqdgLxYIVLvoJttEr40PMGyA"],
        ),
    ] = None,
) -> ItemPage:
    """List the caller's items by id; a page may be short while `next_cursor` is not null."""
    after = _continue_after(signer, cursor, owner, q, tag)
    page = await run_blocking(store.list_items, owner, after=after, limit=limit, q=q, tag=tag)
    next_cursor = (
        None if page.continue_after is None else signer.encode(page.continue_after, owner=owner, q=q, tag=tag)
    )
    return ItemPage(items=page.items, next_cursor=next_cursor)


@router.get(
    "/{item_id}",
    response_model=ItemPublic,
    responses={
        **_NOT_FOUND,
        200: {"headers": _ETAG_HEADER},
        304: {"description": "If-None-Match names the current version; no body.", "headers": _ETAG_HEADER},
    },
)
async def get_item(
    item_id: ItemId,
    owner: CurrentOwner,
    store: ItemStoreDep,
    if_none_match: Annotated[
        str | None,
        Header(description="ETag(s) the client has; the current one gives 304.", examples=['"42-2"']),
    ] = None,
) -> Response:
    """Return one item (304 when the client's copy is current)."""
    item = await run_blocking(store.get, owner, item_id)
    if if_none_match_hits(if_none_match, item):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag(item)})
    return _item_response(item)


@router.put(
    "/{item_id}",
    dependencies=[IdempotencyKey],
    response_model=ItemPublic,
    responses={**_NOT_FOUND, **_PRECONDITION, **_ITEM_WRITE, **_BODY, 200: {"headers": _ETAG_HEADER}},
)
async def replace_item(
    item_id: ItemId,
    item: ItemCreate,
    owner: CurrentOwner,
    store: ItemStoreDep,
    if_match: IfMatch,
    charge_rows: RowsCharge,
) -> Response:
    """Replace every client field; omitted optional fields return to their defaults."""
    fields = item.model_dump()
    return _item_response(
        await run_blocking(store.update, owner, item_id, fields, if_match=if_match, charge_rows=charge_rows)
    )


@router.patch(
    "/{item_id}",
    dependencies=[IdempotencyKey],
    # A JSON Merge Patch (RFC 7396) says so with its own media type; plain JSON works too.
    openapi_extra={
        "requestBody": {
            "content": {
                "application/merge-patch+json": {"schema": {"$ref": "#/components/schemas/ItemPatch"}}
            }
        }
    },
    response_model=ItemPublic,
    responses={**_NOT_FOUND, **_PRECONDITION, **_ITEM_WRITE, **_BODY, 200: {"headers": _ETAG_HEADER}},
)
async def patch_item(
    item_id: ItemId,
    patch: ItemPatch,
    owner: CurrentOwner,
    store: ItemStoreDep,
    if_match: IfMatch,
    charge_rows: RowsCharge,
) -> Response:
    """Apply a JSON Merge Patch (RFC 7396); `{}` returns the item unchanged."""
    fields = patch.changes()
    return _item_response(
        await run_blocking(store.update, owner, item_id, fields, if_match=if_match, charge_rows=charge_rows)
    )


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[IdempotencyKey],
    responses={**_NOT_FOUND, **_PRECONDITION, **_ITEM_WRITE},
)
async def delete_item(
    item_id: ItemId, owner: CurrentOwner, store: ItemStoreDep, if_match: IfMatch, charge_rows: RowsCharge
) -> Response:
    """Delete an item."""
    await run_blocking(store.delete, owner, item_id, if_match=if_match, charge_rows=charge_rows)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
