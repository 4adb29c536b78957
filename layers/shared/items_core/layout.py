"""Which layout the items table's data is in: the ``LAYOUT`` row, read by the API, kept by the upgrade."""

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb import DynamoDBClient

LAYOUT_KEY: dict[str, Any] = {"pk": {"S": "LAYOUT"}, "sk": {"N": "0"}}
# The layout this code writes: 3 = each owner's stored-items count (2 = tag copies, fd07dfb;
# 1 = neither, e21d48b).
CURRENT_LAYOUT = 3
# The first layout whose code writes tag copies with every item.
COPIES_LAYOUT = 2
COMPLETE = "complete"
BACKFILLING = "backfilling"
# A rollback removed the upgrade: older code may be writing; no pass may run (and so none may
# mark the data complete) until a deploy of this layout starts one.
STALE = "stale"
# How long a container trusts what it read: a deploy that resets the row reaches every
# container of the new code at once (they are new), so this only bounds a manual alias move.
CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class Layout:
    """What the API needs to know about the table's data."""

    copies_complete: bool
    legacy_idempotency_until: int
    counts_complete: bool = False

    def legacy_idempotency(self, now: float) -> bool:
        """Whether the release before may still have an idempotency record in the items table."""
        return now <= self.legacy_idempotency_until


# A table no upgrade has looked at: read everything the old way, for as long as that lasts.
UNKNOWN = Layout(copies_complete=False, legacy_idempotency_until=2**62, counts_complete=False)


def new_table_row() -> dict[str, Any]:
    """The layout row of a new, empty table: nothing to bring in line, no earlier records."""
    return {
        **LAYOUT_KEY,
        "layout": {"N": str(CURRENT_LAYOUT)},
        "state": {"S": COMPLETE},
        "generation": {"S": "new-table"},
        "legacy_idempotency_until": {"N": "0"},
    }


def layout_from_row(row: dict[str, Any] | None) -> Layout:
    """The layout a ``LAYOUT`` row describes (UNKNOWN without one)."""
    if not row:
        return UNKNOWN
    layout = int(row.get("layout", {}).get("N", "0"))
    complete = row.get("state", {}).get("S") == COMPLETE and layout == CURRENT_LAYOUT
    # Complete at any layout that writes copies (a row layout 2 left), or carried over by a reset.
    copies = layout >= COPIES_LAYOUT and COMPLETE in (
        row.get("state", {}).get("S"),
        row.get("copies", {}).get("S"),
    )
    return Layout(copies, int(row.get("legacy_idempotency_until", {}).get("N", "0")), complete)


class LayoutReader:
    """The table's layout, read at most every CACHE_SECONDS per container (one GetItem)."""

    def __init__(self, client: "Callable[[], DynamoDBClient]", table_name: str) -> None:
        self._make_client = client  # on first read, which most requests never make
        self._client: DynamoDBClient | None = None
        self._client_lock = threading.Lock()  # reads may come from several worker threads at once
        self._table = table_name
        self._layout = UNKNOWN
        self._read_at = -CACHE_SECONDS

    def _get_client(self) -> "DynamoDBClient":
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def current(self) -> Layout:
        """The layout as of at most CACHE_SECONDS ago (UNKNOWN if it cannot be read now)."""
        if time.monotonic() - self._read_at >= CACHE_SECONDS:
            try:
                response = self._get_client().get_item(
                    TableName=self._table, Key=LAYOUT_KEY, ConsistentRead=True
                )
            except (BotoCoreError, ClientError):
                return UNKNOWN  # always safe: the old way of reading is right for every layout
            self._layout = layout_from_row(response.get("Item"))
            self._read_at = time.monotonic()
        return self._layout
