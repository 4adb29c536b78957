"""What each DynamoDB error means for a request: every error botocore lists for our calls, on purpose."""

from enum import Enum
from typing import Any

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

# Every DynamoDB operation the API and the realtime functions call. The tests fail a call outside it,
# and an error botocore's model lists for these calls that ANSWERS does not answer.
OPERATIONS = frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "TransactWriteItems"})


class Answer(Enum):
    """What a request that met the error gets."""

    CONDITION = "a condition of ours failed: the caller reads the row DynamoDB returned (404, 412, applied)"
    UNAVAILABLE = "503 with Retry-After: DynamoDB throttled, failed, or the table is not there"
    CONFLICT = "retried within the call's attempts, then 409 with Retry-After: nothing was written"
    STORAGE_FULL = "507: an item collection reached 10 GB (needs a local secondary index; none is defined)"


ANSWERS: dict[str, Answer] = {
    "ConditionalCheckFailedException": Answer.CONDITION,
    # Per action (CancellationReasons): conditions are ours, the rest as the codes below.
    "TransactionCanceledException": Answer.CONDITION,
    "ProvisionedThroughputExceededException": Answer.UNAVAILABLE,
    "ThrottlingException": Answer.UNAVAILABLE,
    "RequestLimitExceeded": Answer.UNAVAILABLE,
    "InternalServerError": Answer.UNAVAILABLE,
    # The table is missing or not ACTIVE (a restore, a replacement): not the client's doing.
    "ResourceNotFoundException": Answer.UNAVAILABLE,
    # The same ClientRequestToken is still running; botocore retries it as a throttle.
    "TransactionInProgressException": Answer.UNAVAILABLE,
    # botocore sends a new ClientRequestToken with every call and the same parameters with
    # each of its attempts: a mismatch cannot arise from our calls; a retry gets a new token.
    "IdempotentParameterMismatchException": Answer.UNAVAILABLE,
    # Another request's transaction holds the item (or a global table's replica wrote it).
    "TransactionConflictException": Answer.CONFLICT,
    "ReplicatedWriteConflictException": Answer.CONFLICT,
    "ItemCollectionSizeLimitExceededException": Answer.STORAGE_FULL,
}
# Why one action of a cancelled transaction failed (CancellationReasons codes), when DynamoDB, not our data,
# refused it: such a transaction wrote nothing and may be sent again.
_TRANSIENT_REASONS = {
    "TransactionConflict": Answer.CONFLICT,
    "ReplicatedWriteConflict": Answer.CONFLICT,
    "ThrottlingError": Answer.UNAVAILABLE,
    "ProvisionedThroughputExceeded": Answer.UNAVAILABLE,
    "RequestLimitExceeded": Answer.UNAVAILABLE,
}


def error_code(error: ClientError) -> str:
    """The error code DynamoDB answered with."""
    return str(error.response.get("Error", {}).get("Code", ""))


def cancellation_codes(error: ClientError) -> list[str]:
    """Per action of a cancelled transaction, why it was refused ("None": it was not)."""
    reasons: list[dict[str, Any]] = error.response.get("CancellationReasons", [])  # type: ignore[assignment]
    return [str(reason.get("Code", "None")) for reason in reasons]


def answer(error: BaseException) -> Answer | None:
    """The answer to a failed DynamoDB call; None for what is not a DynamoDB answer (a bug of ours)."""
    if isinstance(error, ConnectionError | HTTPClientError):  # timeouts, refused or dropped connections
        return Answer.UNAVAILABLE
    if not isinstance(error, ClientError):
        return None
    code = error_code(error)
    if code == "TransactionCanceledException":
        reasons = {_TRANSIENT_REASONS.get(reason) for reason in cancellation_codes(error) if reason != "None"}
        if Answer.CONFLICT in reasons and reasons <= {Answer.CONFLICT, Answer.UNAVAILABLE}:
            return Answer.CONFLICT
        if reasons == {Answer.UNAVAILABLE}:
            return Answer.UNAVAILABLE
        return Answer.CONDITION if "ConditionalCheckFailed" in cancellation_codes(error) else None
    return ANSWERS.get(code)


def retry_on_conflict(error_response: dict[str, Any]) -> bool:
    """Whether a parsed error reply is a conflict that another attempt of the same call may resolve."""
    error = ClientError(error_response, "")  # type: ignore[arg-type]
    return answer(error) is Answer.CONFLICT
