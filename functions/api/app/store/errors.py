"""What the store raises, and how a botocore error is read: failed conditions and unavailability."""

from typing import Any

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError


class ItemNotFound(Exception):
    """The owner has no item with this id."""


class PreconditionFailed(Exception):
    """The item exists but its version is not one the client named in If-Match."""


class WriteConflict(Exception):
    """Another write changed the item while this one was being written; nothing was written."""


# Error codes botocore's standard retry mode retries; once they reach the app
# the retries are spent and the client should come back later.
_UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
    }
)


# Why a transaction's item was refused (CancellationReasons codes) when DynamoDB, not the data, refused it.
_UNAVAILABLE_REASONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"})


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _cancellation_codes(error: ClientError) -> set[str]:
    reasons: list[dict[str, Any]] = error.response.get("CancellationReasons", [])  # type: ignore[assignment]
    return {str(reason.get("Code")) for reason in reasons}


def is_unavailable(error: BaseException) -> bool:
    """Whether DynamoDB (or another AWS dependency) was throttling, failing or unreachable."""
    if isinstance(error, ConnectionError | HTTPClientError):  # timeouts, refused or dropped connections
        return True
    if isinstance(error, ClientError):
        code = _error_code(error)
        if code == "TransactionCanceledException":
            return bool(_cancellation_codes(error) & _UNAVAILABLE_REASONS)
        return code in _UNAVAILABLE_CODES or code == "TransactionInProgressException"
    return False


def cancelled_rows(error: ClientError) -> list[dict[str, Any] | None]:
    """Per action of a cancelled transaction: the row its failed condition returned, else None."""
    if _error_code(error) != "TransactionCanceledException":
        return []
    reasons: list[dict[str, Any]] = error.response.get("CancellationReasons", [])  # type: ignore[assignment]
    return [
        reason.get("Item") or {} if reason.get("Code") == "ConditionalCheckFailed" else None
        for reason in reasons
    ]


def condition_failure_row(error: ClientError) -> dict[str, Any] | None:
    """The current row returned with a failed condition (empty if absent), or None for other errors.

    For a transaction, the row is that of its first action (the item's own row, by
    convention of app/store/items.py), when that action's condition failed. A
    transaction refused because another one held the item is a WriteConflict.
    """
    code = _error_code(error)
    if code == "ConditionalCheckFailedException":
        item: dict[str, Any] = error.response.get("Item") or {}  # type: ignore[assignment]
        return item
    if code != "TransactionCanceledException":
        return None
    reasons: list[dict[str, Any]] = error.response.get("CancellationReasons", [])  # type: ignore[assignment]
    if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
        first: dict[str, Any] = reasons[0].get("Item") or {}
        return first
    if "TransactionConflict" in _cancellation_codes(error):
        raise WriteConflict from error
    return None
