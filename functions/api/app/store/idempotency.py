"""Idempotency records (IETF httpapi idempotency-key draft): the key, its claim, its stored response."""

import base64
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from app.store.errors import cancelled_rows, condition_failure_row
from items_core.layout import LayoutReader

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import ConditionCheckTypeDef, PutTypeDef

RECORD_TTL_SECONDS = 24 * 3600
DEFAULT_LOCK_SECONDS = 30
MAX_KEY_LENGTH = 255
# Far above the largest response this API sends (the largest item's, replayed in
# tests/test_dynamodb_limits.py) and far below DynamoDB's 400 KB item limit.
MAX_RECORD_BYTES = 64 * 1024
_IN_PROGRESS = "IN_PROGRESS"
_COMPLETED = "COMPLETED"


def now() -> float:
    """The clock records are judged by (a seam for tests of expiry)."""
    return time.time()


@dataclass(frozen=True)
class StoredResponse:
    """A response as it is recorded and replayed."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass(frozen=True)
class Claimed:
    """This request holds the key and runs."""


@dataclass(frozen=True)
class Replay:
    """The key already completed: answer with its response."""

    response: StoredResponse


@dataclass(frozen=True)
class InProgress:
    """Another request with this key is still running."""

    retry_after: int


@dataclass(frozen=True)
class Mismatch:
    """The key was used for a different request."""


ClaimResult = Claimed | Replay | InProgress | Mismatch


class ResponseTooLarge(Exception):
    """The response is over MAX_RECORD_BYTES; it is not stored."""


def _body_attribute(body: bytes) -> dict[str, Any]:
    try:
        return {"S": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"B": body}


def _body_bytes(attribute: dict[str, Any]) -> bytes:
    if "S" in attribute:
        return str(attribute["S"]).encode("utf-8")
    return bytes(attribute["B"])


@dataclass(frozen=True)
class EarlierRecords:
    """Where the release before kept its records: the items table, while its layout row says so."""

    table_name: str
    layout: Callable[[], LayoutReader]  # the container's current reader (get_layout_reader)


class IdempotencyStore:
    """The idempotency records, in their own table."""

    def __init__(
        self, client: "DynamoDBClient", table_name: str, earlier: EarlierRecords | None = None
    ) -> None:
        self._client = client
        self._table = table_name
        self._earlier = earlier

    @staticmethod
    def record_key(owner: str, method: str, path: str, key: str) -> dict[str, Any]:
        """The record's table key: a hash, so no part can collide with or reveal another."""
        digest = hashlib.sha256(json.dumps([owner, method, path, key]).encode()).hexdigest()
        return {"pk": {"S": digest}}

    def claim(
        self, record_key: dict[str, Any], fingerprint: str, token: str, lock_seconds: float
    ) -> ClaimResult:
        """Take the key for this request, or say why not."""
        current = now()
        values = {
            ":now": {"N": str(int(current))},
            ":in_progress": {"S": _IN_PROGRESS},
            ":fingerprint": {"S": fingerprint},
            ":unprocessable": {"N": "422"},
        }
        claim: PutTypeDef = {
            "TableName": self._table,
            "Item": {
                **record_key,
                "status": {"S": _IN_PROGRESS},
                "fingerprint": {"S": fingerprint},
                "claim_token": {"S": token},
                "locked_until": {"N": str(int(current + lock_seconds))},
                "expires_at": {"N": str(int(current + RECORD_TTL_SECONDS))},
            },
            "ConditionExpression": (
                # TTL deletion is lazy: an expired record may still be there.
                "attribute_not_exists(pk) OR expires_at < :now"
                " OR (#status = :in_progress AND locked_until < :now AND fingerprint = :fingerprint)"
                # A 422 is not kept (the request did not run); the release before this one kept it.
                " OR response_status = :unprocessable"
            ),
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        try:
            if self._earlier is not None and self._earlier.layout().current().legacy_idempotency(current):
                # The release before may hold this key in the items table: claim only if it does not
                # (an expired record, or one whose request died, does not count), in the same call.
                earlier_check: ConditionCheckTypeDef = {
                    "TableName": self._earlier.table_name,
                    "Key": {"pk": {"S": f"IDEMPOTENCY#{record_key['pk']['S']}"}, "sk": {"N": "0"}},
                    "ConditionExpression": (
                        "attribute_not_exists(pk) OR expires_at < :now"
                        " OR (#status = :in_progress AND locked_until < :now)"
                    ),
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {key: values[key] for key in (":now", ":in_progress")},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
                self._client.transact_write_items(
                    TransactItems=[{"Put": claim}, {"ConditionCheck": earlier_check}]
                )
            else:
                self._client.put_item(**claim)
        except ClientError as error:
            rows = cancelled_rows(error)
            if len(rows) == 2 and rows[0] is None and rows[1] is not None:
                return self._held_earlier(rows[1], fingerprint, current)
            row = rows[0] if rows else condition_failure_row(error)
            if row is None:
                raise
            return self._held_by_other(row, fingerprint, token, current)
        return Claimed()

    @staticmethod
    def _held_earlier(row: dict[str, Any], fingerprint: str, now: float) -> ClaimResult:
        """The answer for a key the release before holds (its record format: one JSON response)."""
        if row["fingerprint"]["S"] != fingerprint:
            return Mismatch()
        if row["status"]["S"] == _COMPLETED:
            stored = json.loads(row["response"]["S"])
            headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in stored["headers"]]
            return Replay(StoredResponse(stored["status"], headers, base64.b64decode(stored["body"])))
        return InProgress(retry_after=max(1, math.ceil(float(row["locked_until"]["N"]) - now)))

    @staticmethod
    def _held_by_other(row: dict[str, Any], fingerprint: str, token: str, now: float) -> ClaimResult:
        if row.get("claim_token", {}).get("S") == token:
            return Claimed()  # our own claim, applied, its reply lost
        if row["fingerprint"]["S"] != fingerprint:
            return Mismatch()
        if row["status"]["S"] == _COMPLETED:
            headers = json.loads(row["response_headers"]["S"])
            return Replay(
                StoredResponse(
                    status=int(row["response_status"]["N"]),
                    headers=[(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers],
                    body=_body_bytes(row["response_body"]),
                )
            )
        return InProgress(retry_after=max(1, math.ceil(float(row["locked_until"]["N"]) - now)))

    def complete(self, record_key: dict[str, Any], token: str, response: StoredResponse) -> None:
        """Record the response of the request that holds the key (ResponseTooLarge: not recorded)."""
        headers = json.dumps(
            [(name.decode("latin-1"), value.decode("latin-1")) for name, value in response.headers]
        )
        if len(headers) + len(response.body) > MAX_RECORD_BYTES:
            raise ResponseTooLarge(f"{len(headers) + len(response.body)} bytes")
        try:
            self._client.update_item(
                TableName=self._table,
                Key=record_key,
                UpdateExpression=(
                    "SET #status = :completed, response_status = :code,"
                    " response_headers = :headers, response_body = :body"
                ),
                ConditionExpression="claim_token = :token AND #status = :in_progress",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":completed": {"S": _COMPLETED},
                    ":code": {"N": str(response.status)},
                    ":headers": {"S": headers},
                    ":body": _body_attribute(response.body),
                    ":token": {"S": token},
                    ":in_progress": {"S": _IN_PROGRESS},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            row = condition_failure_row(error)
            already_done = row is not None and row.get("claim_token", {}).get("S") == token
            if not (already_done and row and row["status"]["S"] == _COMPLETED):
                raise

    def release(self, record_key: dict[str, Any], token: str) -> None:
        """Give the key up (no answer, or one not kept for it): a repeat runs again."""
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=record_key,
                ConditionExpression="claim_token = :token",
                ExpressionAttributeValues={":token": {"S": token}},
            )
        except ClientError as error:
            if condition_failure_row(error) is None:
                raise
