"""What the store raises, and how a botocore error is read: failed conditions and unavailability."""

from typing import Any

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError


class ItemNotFound(Exception):
    """The owner has no item with this id."""


class PreconditionFailed(Exception):
    """The item exists but its version is not one the client named in If-Match."""


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


def is_unavailable(error: BaseException) -> bool:
    """Whether DynamoDB (or another AWS dependency) was throttling, failing or unreachable."""
    if isinstance(error, ConnectionError | HTTPClientError):  # timeouts, refused or dropped connections
        return True
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code") in _UNAVAILABLE_CODES
    return False


def condition_failure_row(error: ClientError) -> dict[str, Any] | None:
    """The current row returned with a failed condition (empty if absent), or None for other errors."""
    if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
        return None
    item: dict[str, Any] = error.response.get("Item") or {}  # type: ignore[assignment]
    return item
