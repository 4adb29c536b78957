"""The items table's stream to connected clients: one message per change, to every connection of its owner.

Each stream record becomes the message items_core.messages defines, posted
with the API Gateway Management API to the owner's connections (found with one
Query per owner and batch). A connection that answers 410 Gone is forgotten. Records are handled
one by one in stream order (per item, versions arrive in order); one that
fails is reported with ``ReportBatchItemFailures`` (Powertools' batch utility),
so Lambda retries from it while the others are not blocked; after the
template's retry limit it goes to the on-failure queue. A retried batch may
deliver a message twice: clients keep the highest ``version`` per ``id``.
"""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from botocore.exceptions import ClientError

from items_core.messages import change_from_stream_record
from realtime.aws import management_api
from realtime.connections import connection_store

logger = Logger(service="items-notifier")
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


class Delivery:
    """Posts the records of one batch; each owner's connections are looked up once per batch."""

    def __init__(self) -> None:
        self._connections: dict[str, list[str]] = {}

    def _of_owner(self, owner: str) -> list[str]:
        if owner not in self._connections:
            self._connections[owner] = list(connection_store().of_owner(owner))
        return self._connections[owner]

    def __call__(self, record: DynamoDBRecord) -> int:
        """Post one record's message to its owner's connections; the number of connections reached."""
        owner_change = change_from_stream_record(record.raw_event)
        if owner_change is None:
            return 0
        data = owner_change.change.to_json().encode()
        connections = self._of_owner(owner_change.owner)
        delivered = 0
        for connection_id in list(connections):
            try:
                management_api().post_to_connection(ConnectionId=connection_id, Data=data)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "GoneException":
                    raise
                connection_store().remove(owner_change.owner, connection_id)
                connections.remove(connection_id)
                logger.info("connection gone", extra={"connection_id": connection_id})
                continue
            delivered += 1
        return delivered


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """The Lambda entry point for the items table's stream (partial batch responses)."""
    return process_partial_response(
        event=event, record_handler=Delivery(), processor=processor, context=context
    )
