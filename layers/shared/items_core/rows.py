"""How items are laid out in the table: keys, and turning a stored row into the API's item."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from items_core.models import ItemPublic

OWNER_PREFIX = "OWNER#"
# What a tag copy carries: everything of the item but its key and write token. Its `version` lets the
# upgrade's backfill find copies that are missing, behind their item or left over.
STORED_ATTRIBUTES = (
    "name",
    "name_folded",
    "description",
    "price",
    "quantity",
    "tags",
    "version",
    "created_at",
    "updated_at",
)
TAG_PREFIX = "TAG#"
DELETED_PREFIX = "DELETED#"  # tombstones, outside every listing's key range
COUNTER_SK = 0  # the owner's counter row: last_id (ids are never reused) and live_items
# An owner id is part of every partition key (at most 2,048 bytes in DynamoDB): with the
# longest prefix and tag, 1,024 bytes of owner leave room to spare in each of them.
MAX_OWNER_BYTES = 1024


def owner_key_problem(owner: str) -> str | None:
    """Why this owner id cannot be part of a key (too long, or not encodable as UTF-8), or None."""
    try:
        size = len(owner.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode text (it contains a lone surrogate)"
    if size > MAX_OWNER_BYTES:
        return f"is {size} bytes long; at most {MAX_OWNER_BYTES} bytes (UTF-8) can be stored"
    return None


def owner_pk(owner: str) -> str:
    """The partition key of an owner's items."""
    return f"{OWNER_PREFIX}{owner}"


def tag_pk(owner: str, tag: str) -> str:
    """The partition key of the copies of an owner's items that carry a tag."""
    # The owner's length keeps the key unambiguous whatever characters an owner or a tag contains.
    return f"{TAG_PREFIX}{len(owner)}#{owner}#{tag}"


def parse_tag_pk(pk: str) -> tuple[str, str] | None:
    """The (owner, tag) of a tag copy's partition key, or None for any other key."""
    if not pk.startswith(TAG_PREFIX):
        return None
    length, separator, rest = pk[len(TAG_PREFIX) :].partition("#")
    if not separator or not length.isdigit() or rest[int(length) : int(length) + 1] != "#":
        return None
    return rest[: int(length)], rest[int(length) + 1 :]


def tag_copy(owner: str, row: dict[str, Any], tag: str) -> dict[str, Any]:
    """The copy of an item row that goes into the partition of one of its tags."""
    copy = {name: row[name] for name in STORED_ATTRIBUTES if name in row}
    return {"pk": {"S": tag_pk(owner, tag)}, "sk": row["sk"], **copy}


def tags_of(row: dict[str, Any]) -> list[str]:
    """The tags a stored row carries."""
    return [tag["S"] for tag in row.get("tags", {}).get("L", [])]


def deleted_pk(owner: str) -> str:
    """The partition key of an owner's tombstones."""
    return f"{DELETED_PREFIX}{owner}"


def owner_of(pk: str) -> str | None:
    """The owner whose items partition this is, or None for other rows (tag copies, tombstones)."""
    return pk[len(OWNER_PREFIX) :] if pk.startswith(OWNER_PREFIX) else None


def is_live(row: dict[str, Any] | None) -> bool:
    """Whether a row is a current item (not absent, not a tombstone, not the counter)."""
    return row is not None and "name" in row


def item_from_row(row: dict[str, Any]) -> ItemPublic:
    """The item as the API returns it, from a live row."""
    # Only the API writes rows, from validated models: building the item
    # without validating it again saves every read a validation.
    description = row.get("description")
    return ItemPublic.model_construct(
        id=int(row["sk"]["N"]),
        name=row["name"]["S"],
        description=description["S"] if description else None,
        price=Decimal(row["price"]["N"]),
        quantity=int(row["quantity"]["N"]),
        tags=[tag["S"] for tag in row["tags"]["L"]],
        version=int(row["version"]["N"]),
        created_at=datetime.fromisoformat(row["created_at"]["S"]),
        updated_at=datetime.fromisoformat(row["updated_at"]["S"]),
    )
