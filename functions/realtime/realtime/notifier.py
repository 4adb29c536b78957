"""The items table's stream to connected clients: one message per change, to every connection of its owner.

Each stream record becomes the message items_core.messages defines, posted
with the API Gateway Management API to the owner's connections (found with one
Query per owner and batch). Records are handled one by one in stream order;
one that fails is reported with ``ReportBatchItemFailures`` (Powertools' batch
utility), so Lambda retries from it; after the template's retry limit it goes
to the on-failure queue. What a client can rely on:

- **Per item, versions in order.** Once a record fails, the later records of
  the same item in that batch are not delivered in this invocation (they are
  reported as failed too, and come back in order on the retry); other items'
  records still go out.
- **Possible duplicates.** A retry resends what was already delivered after
  the failed record: clients keep the highest ``version`` per ``id``.
- **One bad connection fails nothing else.** A 410 Gone forgets the connection;
  any other refusal of one connection is logged and counted
  (``ConnectionPostFailures``, alarmed) and the others are still served. Only
  the Management API itself being unavailable (throttling, 5xx, no answer), or
  DynamoDB failing the owner's connection Query, fails the record, for a retry;
  a connection that cannot be forgotten now is forgotten at its next 410 or TTL.
- **Tokens end connections.** A connection whose token's ``exp`` has passed is
  closed and forgotten instead of receiving the change.
"""

import os
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from items_core.dynamodb_errors import answer
from items_core.messages import change_from_stream_record
from realtime.aws import management_api
from realtime.connections import Connection, connection_store
from realtime.settings import get_settings

SERVICE = "items-notifier"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "ItemsApi", service=SERVICE)
# A batch whose every record failed is reported like any other (all as failures), not raised:
# an invocation error would make Lambda bisect the batch, with no regard for per-item order.
processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
# Error codes of the Management API itself being unavailable, not of one connection.
_UNAVAILABLE_CODES = frozenset(
    {"LimitExceededException", "TooManyRequestsException", "ThrottlingException", "InternalServerError"}
)
# What a record must leave of the invocation before one more call: one worst-case call and a margin.
_MARGIN_SECONDS = 1.0


class ItemBlocked(Exception):
    """An earlier record of this item failed in this batch; this one waits for the retry, in order."""


class OutOfTime(Exception):
    """Too little of the invocation is left for another call; the record is retried."""


class ManagementApiUnavailable(Exception):
    """The Management API throttled, failed or did not answer: the record is retried."""


def _unavailable(error: Exception) -> bool:
    if isinstance(error, ConnectionError | HTTPClientError):
        return True
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in _UNAVAILABLE_CODES or status >= 500
    return False


def _item_of(record: DynamoDBRecord) -> tuple[str, str] | None:
    keys = (record.raw_event.get("dynamodb") or {}).get("Keys") or {}
    try:
        return keys["pk"]["S"], keys["sk"]["N"]
    except (KeyError, TypeError):
        return None


class Delivery:
    """Posts the records of one batch; each owner's connections are looked up once per batch."""

    def __init__(self, context: Any = None) -> None:
        self._connections: dict[str, list[Connection]] = {}
        self._failed_items: set[tuple[str, str]] = set()
        self._remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        self._call_budget = get_settings().worst_case_call_seconds() + _MARGIN_SECONDS
        self.post_failures = 0
        self.expired = 0

    def _of_owner(self, owner: str) -> list[Connection]:
        if owner not in self._connections:
            self._before_call()
            self._connections[owner] = list(connection_store().of_owner(owner))
        return self._connections[owner]

    def _before_call(self) -> None:
        if callable(self._remaining_ms) and self._remaining_ms() / 1000 < self._call_budget:
            raise OutOfTime

    def __call__(self, record: DynamoDBRecord) -> int:
        """Post one record's message to its owner's connections; the number of connections reached."""
        item = _item_of(record)
        if item is not None and item in self._failed_items:
            raise ItemBlocked(f"an earlier change of {item} failed in this batch")
        try:
            return self._deliver(record)
        except Exception:
            if item is not None:
                self._failed_items.add(item)
            raise

    def _deliver(self, record: DynamoDBRecord) -> int:
        owner_change = change_from_stream_record(record.raw_event)
        if owner_change is None:
            return 0
        data = owner_change.change.to_json().encode()
        connections = self._of_owner(owner_change.owner)
        now = time.time()
        delivered = 0
        for connection in list(connections):
            if connection.token_expired(now):
                self._close_expired(owner_change.owner, connection, connections)
                continue
            if self._post(owner_change.owner, connection, connections, data):
                delivered += 1
        return delivered

    def _post(self, owner: str, connection: Connection, connections: list[Connection], data: bytes) -> bool:
        self._before_call()
        try:
            management_api().post_to_connection(ConnectionId=connection.connection_id, Data=data)
        except (ClientError, ConnectionError, HTTPClientError) as error:
            if _unavailable(error):
                raise ManagementApiUnavailable(type(error).__name__) from error
            code = error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else None
            if code == "GoneException":
                self._forget(owner, connection, connections)
                logger.info("connection gone", extra={"connection_id": connection.connection_id})
            else:
                self.post_failures += 1
                logger.warning(
                    "posting to one connection failed; the others are still served",
                    extra={"connection_id": connection.connection_id, "error": code or type(error).__name__},
                )
            return False
        return True

    def _forget(self, owner: str, connection: Connection, connections: list[Connection]) -> None:
        self._before_call()
        connections.remove(connection)  # skipped for the rest of the batch either way
        try:
            connection_store().remove(owner, connection.connection_id)
        except Exception as error:
            if answer(error) is None:
                raise
            # Forgotten at its next 410, or by its TTL: no reason to fail the record.
            logger.warning("could not forget a connection", extra={"connection_id": connection.connection_id})

    def _close_expired(self, owner: str, connection: Connection, connections: list[Connection]) -> None:
        self.expired += 1
        self._forget(owner, connection, connections)
        self._before_call()
        try:  # closes the client's socket; it reconnects with a fresh token
            management_api().delete_connection(ConnectionId=connection.connection_id)
        except (ClientError, ConnectionError, HTTPClientError) as error:
            logger.info("closing an expired connection failed", extra={"error": type(error).__name__})
        logger.info("token expired; connection closed", extra={"connection_id": connection.connection_id})

    def publish_metrics(self) -> None:
        """One EMF record with this batch's per-connection failures and expired tokens, if any."""
        if not (self.post_failures or self.expired):
            return
        metrics.add_metric(name="ConnectionPostFailures", unit=MetricUnit.Count, value=self.post_failures)
        metrics.add_metric(name="ExpiredConnectionsClosed", unit=MetricUnit.Count, value=self.expired)
        metrics.flush_metrics()


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """The Lambda entry point for the items table's stream (partial batch responses)."""
    delivery = Delivery(context)
    try:
        return process_partial_response(
            event=event, record_handler=delivery, processor=processor, context=context
        )
    finally:
        delivery.publish_metrics()
