"""Connection records: which WebSocket connections belong to which owner."""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from realtime.aws import dynamodb
from realtime.settings import get_settings

# Finds a connection's owner for $disconnect, whose event names only the connection.
CONNECTION_INDEX = "by-connection"


@dataclass(frozen=True)
class Connection:
    """One open connection of an owner."""

    connection_id: str
    token_expires_at: int | None  # None: recorded before tokens ended connections

    def token_expired(self, now: float) -> bool:
        """Whether the token this connection was opened with has expired."""
        return self.token_expires_at is not None and self.token_expires_at <= now


class ConnectionStore:
    """Every call the realtime functions make on the connections table."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def add(self, owner: str, connection_id: str, ttl_seconds: int, token_expires_at: int) -> None:
        """Record a new connection of this owner, opened with a token valid until `token_expires_at`."""
        now = int(time.time())
        self._client.put_item(
            TableName=self._table,
            Item={
                "owner": {"S": owner},
                "connection_id": {"S": connection_id},
                "connected_at": {"N": str(now)},
                "expires_at": {"N": str(now + ttl_seconds)},
                "token_expires_at": {"N": str(token_expires_at)},
            },
        )

    def count_open(self, owner: str, now: int) -> int:
        """How many connections the owner has open: records not yet expired (TTL deletes lag)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#owner = :owner",
            "FilterExpression": "expires_at > :now",
            "ExpressionAttributeNames": {"#owner": "owner"},
            "ExpressionAttributeValues": {":owner": {"S": owner}, ":now": {"N": str(now)}},
            "Select": "COUNT",
            "ConsistentRead": True,
        }
        count: int = 0
        while True:
            response = self._client.query(**request)
            count += int(response["Count"])
            if "LastEvaluatedKey" not in response:
                return count
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def of_owner(self, owner: str) -> Iterator[Connection]:
        """The owner's connections (a Query, page by page; never a Scan)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#owner = :owner",
            "ExpressionAttributeNames": {"#owner": "owner"},
            "ExpressionAttributeValues": {":owner": {"S": owner}},
            "ProjectionExpression": "connection_id, token_expires_at",
            # A connection recorded a moment ago must receive the next change.
            "ConsistentRead": True,
        }
        while True:
            response = self._client.query(**request)
            for row in response["Items"]:
                expiry = row.get("token_expires_at")
                yield Connection(row["connection_id"]["S"], int(expiry["N"]) if expiry else None)
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def remove(self, owner: str, connection_id: str) -> None:
        """Forget one connection (gone, or disconnected)."""
        self._client.delete_item(
            TableName=self._table,
            Key={"owner": {"S": owner}, "connection_id": {"S": connection_id}},
        )

    def disconnect(self, connection_id: str) -> bool:
        """Forget a connection known only by its id; False if it was not found."""
        response = self._client.query(
            TableName=self._table,
            IndexName=CONNECTION_INDEX,
            KeyConditionExpression="connection_id = :id",
            ExpressionAttributeValues={":id": {"S": connection_id}},
        )
        for row in response["Items"]:
            self.remove(row["owner"]["S"], connection_id)
        return bool(response["Items"])


@lru_cache
def connection_store() -> ConnectionStore:
    """The connection records, once per container."""
    return ConnectionStore(dynamodb(), get_settings().connections_table_name)
