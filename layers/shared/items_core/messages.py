"""The realtime contract: what a connected client receives and how its own messages are answered."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel

from items_core.models import ItemPublic
from items_core.rows import COUNTER_SK, is_live, item_from_row, owner_of

MAX_CLIENT_MESSAGE_BYTES = 4096
MAX_CONNECTIONS_PER_OWNER = 10
ChangeType = Literal["item.created", "item.updated", "item.deleted"]


class ItemChange(BaseModel):
    """One change to one of the owner's items."""

    type: ChangeType
    id: int
    version: int
    item: ItemPublic | None = None
    at: datetime

    def to_json(self) -> str:
        """The message as sent: `item` is absent (not null) on delete."""
        return self.model_dump_json(exclude={"item"} if self.item is None else None)


class Pong(BaseModel):
    """The answer to `{"action": "ping"}`."""

    type: Literal["pong"] = "pong"


class ErrorMessage(BaseModel):
    """The answer to a message the server cannot act on; the connection stays open."""

    type: Literal["error"] = "error"
    detail: str


@dataclass(frozen=True)
class OwnerChange:
    """A change and the owner whose connections receive it."""

    owner: str
    change: ItemChange


def _approximate_time(data: dict[str, Any]) -> datetime:
    """When the record was written, in whole seconds like every other `at` (and the items' times)."""
    # Lambda events carry epoch seconds; GetRecords through botocore (make run), a datetime that
    # may carry microseconds.
    stamp = data.get("ApproximateCreationDateTime")
    if isinstance(stamp, datetime):
        moment = stamp
    elif isinstance(stamp, int | float):
        moment = datetime.fromtimestamp(stamp, UTC)
    else:
        moment = datetime.now(UTC)
    return moment.replace(microsecond=0)


def change_from_stream_record(record: dict[str, Any]) -> OwnerChange | None:
    """The message for one stream record (None: no client should see it; KeyError/ValueError: unreadable)."""
    data = record["dynamodb"]
    keys = data["Keys"]
    owner = owner_of(keys["pk"]["S"])
    if owner is None:
        return None  # idempotency records and anything else that is not an owner's item
    item_id = int(keys["sk"]["N"])
    if item_id == COUNTER_SK:
        return None
    new, old = data.get("NewImage"), data.get("OldImage")
    if is_live(new):
        item = item_from_row(new)
        if is_live(old) and int(old["version"]["N"]) >= item.version:
            return None  # nothing a client can see changed
        kind: ChangeType = "item.updated" if is_live(old) else "item.created"
        change = ItemChange(type=kind, id=item.id, version=item.version, item=item, at=item.updated_at)
        return OwnerChange(owner, change)
    if not is_live(old):
        return None  # a previous layout's tombstone expiring (TTL): the deletion was already announced
    if new and "version" in new:  # the previous layout's tombstone, written over the item row
        version = int(new["version"]["N"])
        at = datetime.fromisoformat(new["updated_at"]["S"])
    else:  # the item row removed (the API's delete; its tombstone is in another partition)
        version = int(old["version"]["N"]) + 1  # per item, versions only grow
        at = _approximate_time(data)
    return OwnerChange(owner, ItemChange(type="item.deleted", id=item_id, version=version, at=at))


def _error(detail: str) -> str:
    return ErrorMessage(detail=detail).model_dump_json()


def reply_to(message: str | bytes | None) -> str:
    """The answer to one message a client sent: a pong, or an error that names the problem."""
    if not isinstance(message, str):
        return _error('send text messages: JSON such as {"action": "ping"}')
    if len(message.encode()) > MAX_CLIENT_MESSAGE_BYTES:
        return _error(f"message is over {MAX_CLIENT_MESSAGE_BYTES} bytes")
    try:
        parsed = json.loads(message)
    except (ValueError, RecursionError):
        return _error("message is not valid JSON")
    action = parsed.get("action") if isinstance(parsed, dict) else None
    if not isinstance(action, str):
        return _error('message must be a JSON object with a string "action"')
    if action != "ping":
        shown = action if len(action) <= 50 else action[:50] + "..."
        detail = f'unknown action {json.dumps(shown)}; the only action is "ping"'
        return _error(detail)
    return Pong().model_dump_json()


def too_many_connections(limit: int) -> str:
    """The refusal of a handshake beyond the owner's connection limit."""
    return f"too many open connections: an owner may have {limit}; close one and retry"


# The handshake's refusals, the same locally and deployed. Every invalid token gets the same
# answer: which check failed is logged, never told.
MISSING_TOKEN = "missing token: pass ?token=<JWT> or Authorization: Bearer <JWT>"  # noqa: S105 - a message
INVALID_TOKEN = "invalid or expired token"  # noqa: S105 - a message


def owner_not_usable(claim: str, problem: str) -> str:
    """The refusal of a token whose owner id cannot be stored (HTTP 403 and the handshake alike)."""
    return f"The token's owner claim ({claim}) {problem}"
