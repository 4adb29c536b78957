"""DynamoDB storage of items: keys, attribute mapping and every call the API makes.

Layout of the single table (key schema in template.yaml):

- ``pk`` (S) = ``OWNER#<owner>``: one partition per owner, so isolation is a key
  property, not a filter, and listing is a Query on one partition.
- ``sk`` (N) = the item id (>= 1). ``sk = 0`` holds the owner's id counter
  (``last_id``); ids are never reused.
- ``name_folded`` is ``name.casefold()`` so ``q`` can match case-insensitively
  with ``contains`` in a filter expression.

Writes are safe to retry. botocore resends a write whose reply was lost, so
DynamoDB may see it twice. Every write therefore stores a fresh per-request
``write_token`` and refuses to run again where that token already stands; when
the condition fails, ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` returns
the current row at no extra cost, and our own token in it means "this write
was applied": the retry reports success instead of a false 404/412, a second
version bump, a duplicate item or a skipped id.

A delete therefore leaves a tombstone (the key, the token, ``expires_at`` for
DynamoDB's TTL, and the deletion's ``version`` and ``updated_at`` for the
change stream) instead of removing the row, so its retry can see that it was
applied. Reads treat a row without ``name`` as absent.
"""

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from app.store.errors import ItemNotFound, PreconditionFailed, condition_failure_row
from items_core.models import ItemCreate, ItemPublic
from items_core.rows import COUNTER_SK, item_from_row, owner_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, QueryInputTypeDef

# DynamoDB numbers keep 38 significant digits; no id can ever get this large.
MAX_ITEM_ID = 2**63 - 1
TOMBSTONE_TTL_SECONDS = 24 * 3600
_CLIENT_ATTRIBUTES = ("name", "name_folded", "description", "price", "quantity", "tags")
_PROJECTION = "sk, #name, description, price, quantity, tags, version, created_at, updated_at"
_NAMES = {"#name": "name"}
# A filtered page evaluates this many items per Query, at most this many times,
# so a sparse match costs bounded capacity and time; the cursor resumes where it stopped.
FILTERED_EVALUATION_LIMIT = 100
FILTERED_MAX_QUERIES = 2
# "Not yet applied by this request": the row is live and carries another token.
_LIVE_AND_NOT_MINE = (
    "attribute_exists(#name) AND (attribute_not_exists(write_token) OR write_token <> :token)"
)

AnyVersion = Literal["*"]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(owner: str, item_id: int) -> dict[str, "AttributeValueTypeDef"]:
    return {"pk": {"S": owner_pk(owner)}, "sk": {"N": str(item_id)}}


def _item_key(owner: str, item_id: int) -> dict[str, "AttributeValueTypeDef"]:
    # Any integer >= 1 is a valid id in the URL; one too large to exist is simply not found.
    if item_id > MAX_ITEM_ID:
        raise ItemNotFound
    return _key(owner, item_id)


def _written_by(row: dict[str, Any], token: str) -> bool:
    return bool(row.get("write_token", {}).get("S") == token)


def _client_fields(fields: dict[str, Any]) -> dict[str, "AttributeValueTypeDef"]:
    """Map client-owned fields to attributes; a None description maps to no attribute."""
    attributes: dict[str, AttributeValueTypeDef] = {}
    for field, value in fields.items():
        if field == "name":
            attributes["name"] = {"S": value}
            attributes["name_folded"] = {"S": value.casefold()}
        elif field == "description":
            if value is not None:
                attributes["description"] = {"S": value}
        elif field == "price":
            attributes["price"] = {"N": str(value)}
        elif field == "quantity":
            attributes["quantity"] = {"N": str(value)}
        elif field == "tags":
            attributes["tags"] = {"L": [{"S": tag} for tag in value]}
    return attributes


def _version_condition(
    if_match: list[int] | AnyVersion | None, values: dict[str, "AttributeValueTypeDef"]
) -> str:
    if if_match is None or if_match == "*":
        return ""
    if not if_match:  # If-Match named no version of this item: nothing live can match
        return " AND attribute_not_exists(version)"
    names = []
    for index, version in enumerate(if_match):
        values[f":v{index}"] = {"N": str(version)}
        names.append(f":v{index}")
    return f" AND version IN ({', '.join(names)})"


@dataclass(frozen=True)
class StoredPage:
    """Items of one page and the id to continue after, if any."""

    items: list[ItemPublic]
    continue_after: int | None


class ItemStore:
    """Every DynamoDB call for items goes through here."""

    def __init__(self, client: "DynamoDBClient", table_name: str) -> None:
        self._client = client
        self._table = table_name

    def get(self, owner: str, item_id: int) -> ItemPublic:
        """Return the owner's item or raise ItemNotFound."""
        response = self._client.get_item(
            TableName=self._table,
            Key=_item_key(owner, item_id),
            ProjectionExpression=_PROJECTION,
            ExpressionAttributeNames=_NAMES,
            # Read-your-writes: a client that just wrote must not get a 404 or an old version.
            ConsistentRead=True,
        )
        row = response.get("Item")
        if not row or "name" not in row:
            raise ItemNotFound
        return item_from_row(row)

    def _next_id(self, owner: str, token: str) -> int:
        try:
            counter = self._client.update_item(
                TableName=self._table,
                Key=_key(owner, COUNTER_SK),
                UpdateExpression="SET last_id = if_not_exists(last_id, :zero) + :one, write_token = :token",
                ConditionExpression="attribute_not_exists(write_token) OR write_token <> :token",
                ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}, ":token": {"S": token}},
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            row = condition_failure_row(error)
            if row is None or not _written_by(row, token):
                raise
            return int(row["last_id"]["N"])  # our increment was applied; its reply was lost
        return int(counter["Attributes"]["last_id"]["N"])

    def create(self, owner: str, item: ItemCreate) -> ItemPublic:
        """Assign the owner's next id and store the item."""
        token = uuid.uuid4().hex
        item_id = self._next_id(owner, token)
        now = _now()
        attributes = {
            **_key(owner, item_id),
            **_client_fields(item.model_dump()),
            "version": {"N": "1"},
            "created_at": {"S": now},
            "updated_at": {"S": now},
            "write_token": {"S": token},
        }
        try:
            self._client.put_item(
                TableName=self._table,
                Item=attributes,
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            row = condition_failure_row(error)
            if row is None or not _written_by(row, token):
                raise
        return item_from_row(attributes)

    def update(
        self,
        owner: str,
        item_id: int,
        fields: dict[str, Any],
        *,
        if_match: list[int] | AnyVersion | None = None,
    ) -> ItemPublic:
        """Set the given client fields (a full replace passes all of them), version + 1.

        ``if_match``: the versions the client accepts (from If-Match), ``"*"`` or None.
        """
        if not fields:
            current = self.get(owner, item_id)
            if isinstance(if_match, list) and current.version not in if_match:
                raise PreconditionFailed
            return current
        token = uuid.uuid4().hex
        values: dict[str, AttributeValueTypeDef] = {
            ":one": {"N": "1"},
            ":now": {"S": _now()},
            ":token": {"S": token},
        }
        names = dict(_NAMES)
        assignments = ["version = version + :one", "updated_at = :now", "write_token = :token"]
        for attribute, value in _client_fields(fields).items():
            names[f"#{attribute}"] = attribute
            values[f":{attribute}"] = value
            assignments.append(f"#{attribute} = :{attribute}")
        expression = "SET " + ", ".join(assignments)
        if "description" in fields and fields["description"] is None:
            expression += " REMOVE description"
        condition = _LIVE_AND_NOT_MINE + _version_condition(if_match, values)
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=_item_key(owner, item_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            return item_from_row(self._resolve(error, token, if_match))
        return item_from_row(response["Attributes"])

    def delete(self, owner: str, item_id: int, *, if_match: list[int] | AnyVersion | None = None) -> None:
        """Delete the owner's item (leaving a tombstone) or raise ItemNotFound/PreconditionFailed."""
        token = uuid.uuid4().hex
        values: dict[str, AttributeValueTypeDef] = {
            ":token": {"S": token},
            ":expires": {"N": str(int(time.time()) + TOMBSTONE_TTL_SECONDS)},
            ":one": {"N": "1"},
            ":now": {"S": _now()},
        }
        condition = _LIVE_AND_NOT_MINE + _version_condition(if_match, values)
        removed = ", ".join(f"#{attribute}" for attribute in _CLIENT_ATTRIBUTES)
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_item_key(owner, item_id),
                # The tombstone keeps the deletion's version and time for the change stream.
                UpdateExpression=(
                    "SET write_token = :token, expires_at = :expires, version = version + :one, "
                    f"updated_at = :now REMOVE {removed}, created_at"
                ),
                ConditionExpression=condition,
                ExpressionAttributeNames={f"#{attribute}": attribute for attribute in _CLIENT_ATTRIBUTES},
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            self._resolve(error, token, if_match)

    def _resolve(
        self, error: ClientError, token: str, if_match: list[int] | AnyVersion | None
    ) -> dict[str, Any]:
        """Tell apart a failed condition: our own applied write (returned), 404 or 412."""
        row = condition_failure_row(error)
        if row is None:
            raise error
        if _written_by(row, token):
            return row
        if "name" not in row:
            raise ItemNotFound from error
        if isinstance(if_match, list):
            raise PreconditionFailed from error
        raise error  # unreachable: a live row without our token satisfies every other condition

    def list_items(self, owner: str, *, after: int, limit: int, q: str = "", tag: str = "") -> StoredPage:
        """Items with id > after, in id order, matching the optional filters."""
        filters = ["attribute_exists(#name)"]  # skips tombstones
        values: dict[str, AttributeValueTypeDef] = {":pk": {"S": owner_pk(owner)}}
        if q:
            filters.append("contains(name_folded, :q)")
            values[":q"] = {"S": q.casefold()}
        if tag:
            filters.append("contains(tags, :tag)")
            values[":tag"] = {"S": tag}
        filtered = bool(q or tag)
        # One more than a page tells whether another page exists without a
        # second round trip (and without handing out a cursor to an empty page).
        evaluate = max(limit + 1, FILTERED_EVALUATION_LIMIT) if filtered else limit + 1
        max_queries = FILTERED_MAX_QUERIES if filtered else 1
        items: list[ItemPublic] = []
        for _ in range(max_queries):
            values[":after"] = {"N": str(after)}
            request: QueryInputTypeDef = {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :pk AND sk > :after",
                "FilterExpression": " AND ".join(filters),
                "ProjectionExpression": _PROJECTION,
                "ExpressionAttributeNames": _NAMES,
                "ExpressionAttributeValues": values,
                "Limit": evaluate,
                "ConsistentRead": True,
            }
            response = self._client.query(**request)
            items.extend(item_from_row(attributes) for attributes in response["Items"])
            if len(items) > limit:
                return StoredPage(items[:limit], continue_after=items[limit - 1].id)
            last_key = response.get("LastEvaluatedKey")
            if last_key is None:
                return StoredPage(items, continue_after=None)
            after = int(last_key["sk"]["N"])
        return StoredPage(items, continue_after=after)
