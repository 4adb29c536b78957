"""CRUD and listing of the caller's items."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError

from app.cursor import MAX_CURSOR_LENGTH, InvalidCursor, decode_cursor, encode_cursor
from app.dependencies import CurrentOwner, ItemId, ItemStoreDep
from app.models import ErrorDetail, ItemCreate, ItemPage, ItemPatch, ItemPublic
from app.request_body import ExactJSONRoute

_NOT_AUTHENTICATED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorDetail, "description": "No verified principal (missing or invalid token)."}
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorDetail, "description": "The caller has no item with this id."}
}

router = APIRouter(prefix="/items", tags=["items"], route_class=ExactJSONRoute, responses=_NOT_AUTHENTICATED)


def _continue_after(cursor: str | None, q: str, tag: str) -> int:
    if cursor is None:
        return 0
    try:
        return decode_cursor(cursor, q=q, tag=tag)
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


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_item(
    item: ItemCreate, owner: CurrentOwner, store: ItemStoreDep, request: Request, response: Response
) -> ItemPublic:
    """Create an item; `Location` is the path of the new item."""
    created = store.create(owner, item)
    response.headers["Location"] = request.url_for("get_item", item_id=created.id).path
    return created


@router.get("")
async def list_items(
    owner: CurrentOwner,
    store: ItemStoreDep,
    q: Annotated[str, Query(max_length=200, description="Case-insensitive substring of the name.")] = "",
    tag: Annotated[str, Query(max_length=50, description="Only items carrying this exact tag.")] = "",
    limit: Annotated[int, Query(ge=1, le=100, description="Most items on this page.")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page.")
    ] = None,
) -> ItemPage:
    """List the caller's items by id; a page may be short while `next_cursor` is not null."""
    page = store.list_items(owner, after=_continue_after(cursor, q, tag), limit=limit, q=q, tag=tag)
    next_cursor = None if page.continue_after is None else encode_cursor(page.continue_after, q=q, tag=tag)
    return ItemPage(items=page.items, next_cursor=next_cursor)


@router.get("/{item_id}", responses=_NOT_FOUND)
async def get_item(item_id: ItemId, owner: CurrentOwner, store: ItemStoreDep) -> ItemPublic:
    """Return one item."""
    return store.get(owner, item_id)


@router.put("/{item_id}", responses=_NOT_FOUND)
async def replace_item(
    item_id: ItemId, item: ItemCreate, owner: CurrentOwner, store: ItemStoreDep
) -> ItemPublic:
    """Replace every client field; omitted optional fields return to their defaults."""
    return store.update(owner, item_id, item.model_dump())


@router.patch("/{item_id}", responses=_NOT_FOUND)
async def patch_item(
    item_id: ItemId, patch: ItemPatch, owner: CurrentOwner, store: ItemStoreDep
) -> ItemPublic:
    """Apply a JSON Merge Patch (RFC 7396); `{}` returns the item unchanged."""
    return store.update(owner, item_id, patch.changes())


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def delete_item(item_id: ItemId, owner: CurrentOwner, store: ItemStoreDep) -> Response:
    """Delete an item."""
    store.delete(owner, item_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
