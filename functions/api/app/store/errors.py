"""What the store raises, and how a failed condition is read from a botocore error."""

from typing import Any

from botocore.exceptions import ClientError

from items_core.dynamodb_errors import error_code


class ItemNotFound(Exception):
    """The owner has no item with this id."""


class PreconditionFailed(Exception):
    """The item exists but its version is not one the client named in If-Match."""


class WriteConflict(Exception):
    """Another write changed the item while this one was being written; nothing was written."""

    detail = "Another request changed this item while this one was writing it; nothing was changed. Retry."


class ItemsQuotaFull(Exception):
    """The owner already stores as many items as its quota allows; nothing was written."""

    def __init__(self, quota: int, stored: int | None = None) -> None:
        super().__init__(quota)
        stored = quota if stored is None else stored
        if stored > quota:  # the quota was lowered below what the owner already stores
            stores = f"This owner stores {stored} items; its quota allows {quota} (OwnerItemsStored)"
        else:
            stores = f"This owner already stores {quota} items, the most its quota allows (OwnerItemsStored)"
        self.detail = f"{stores}; nothing was created. Delete items to make room."


def _reasons(error: ClientError) -> list[dict[str, Any]]:
    reasons: list[dict[str, Any]] = error.response.get("CancellationReasons", [])  # type: ignore[assignment]
    return reasons


def cancelled_rows(error: ClientError) -> list[dict[str, Any] | None]:
    """Per action of a cancelled transaction: the row its failed condition returned, else None."""
    if error_code(error) != "TransactionCanceledException":
        return []
    return [
        reason.get("Item") or {} if reason.get("Code") == "ConditionalCheckFailed" else None
        for reason in _reasons(error)
    ]


def condition_failure_row(error: ClientError) -> dict[str, Any] | None:
    """The current row returned with a failed condition (empty if absent), or None for other errors."""
    code = error_code(error)
    if code == "ConditionalCheckFailedException":
        item: dict[str, Any] = error.response.get("Item") or {}  # type: ignore[assignment]
        return item
    rows = cancelled_rows(error)
    # A transaction's first action is the item's own row (ItemStore._transact).
    return rows[0] if rows else None
