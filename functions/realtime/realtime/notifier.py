"""The items table's stream to connected clients: one message per change, to every connection of its owner."""

import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from items_core.dynamodb_errors import answer
from items_core.messages import change_from_stream_record
from items_core.rows import owner_of
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
# Owners served at once (each a thread posting to its connections; botocore's pool holds 10).
OWNER_WORKERS = 8
# Records delivered by this container, remembered so a retry of the batch skips them: Lambda retries
# from the first failed record, so those delivered after it come back.
DELIVERED_MEMORY = 10_000


class ItemBlocked(Exception):
    """An earlier record of this item failed in this batch; this one waits for the retry, in order."""


class OutOfTime(Exception):
    """Too little of the invocation is left for another call; the record is retried."""


class ManagementApiUnavailable(Exception):
    """The Management API throttled, failed or did not answer: the record is retried."""


class OwnerOutOfTime(Exception):
    """This owner's changes used up their time in this invocation; the record is retried."""


class DeliveredRecords:
    """The stream records this container delivered (bounded; oldest forgotten first)."""

    def __init__(self, size: int) -> None:
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def __contains__(self, key: tuple[str, str]) -> bool:
        with self._lock:
            return key in self._seen

    def add(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._seen[key] = None
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)


@lru_cache
def delivered_records() -> DeliveredRecords:
    """This container's memory of delivered records (tests clear it)."""
    return DeliveredRecords(DELIVERED_MEMORY)


def _record_key(record: DynamoDBRecord) -> tuple[str, str]:
    return str(record.raw_event.get("eventSourceARN")), str(
        record.dynamodb.sequence_number if record.dynamodb else ""
    )


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
    """Posts the records of one batch, owners side by side; each owner's connections are looked up once."""

    def __init__(self, context: Any = None) -> None:
        self._connections: dict[str, list[Connection]] = {}
        self._failed_items: set[tuple[str, str]] = set()
        self._remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        self._call_budget = get_settings().worst_case_call_seconds() + _MARGIN_SECONDS
        self._owner_deadline: dict[str, float] = {}
        self._outcomes: dict[tuple[str, str], Exception | None] = {}
        self._lock = threading.Lock()
        self.post_failures = 0
        self.expired = 0

    def run(self, records: list[dict[str, Any]]) -> None:
        """Deliver a batch: each owner's records in order, the owners at the same time."""
        by_owner: dict[str | None, list[DynamoDBRecord]] = {}
        for raw in records:
            record = DynamoDBRecord(raw)
            item = _item_of(record)  # the partition names the owner, even of a record that cannot be read
            by_owner.setdefault(owner_of(item[0]) if item else None, []).append(record)
        management_api(), connection_store()  # made once, before the threads share them
        with ThreadPoolExecutor(max_workers=OWNER_WORKERS) as pool:
            for done in pool.map(self._run_owner, by_owner.items()):
                self._outcomes.update(done)

    def _run_owner(
        self, owner_records: tuple[str | None, list[DynamoDBRecord]]
    ) -> dict[tuple[str, str], Exception | None]:
        owner, records = owner_records
        if owner is not None:
            self._owner_deadline[owner] = time.monotonic() + get_settings().owner_fanout_seconds
        outcomes: dict[tuple[str, str], Exception | None] = {}
        for record in records:
            key = _record_key(record)
            try:
                if key not in delivered_records():
                    self(record)
                    delivered_records().add(key)
                outcomes[key] = None
            except Exception as error:  # reported for this record by outcome_of
                outcomes[key] = error
        return outcomes

    def outcome_of(self, record: DynamoDBRecord) -> None:
        """The record handler of Powertools' batch processor: raises what delivering the record raised."""
        error = self._outcomes.get(_record_key(record))
        if error is not None:
            raise error

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
        if time.monotonic() > self._owner_deadline.get(owner, float("inf")):
            raise OwnerOutOfTime(f"this owner's changes took over {get_settings().owner_fanout_seconds} s")
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
                with self._lock:
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
        with self._lock:
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
        delivery.run(event.get("Records") or [])
        return process_partial_response(
            event=event, record_handler=delivery.outcome_of, processor=processor, context=context
        )
    finally:
        delivery.publish_metrics()
