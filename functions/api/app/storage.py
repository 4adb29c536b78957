"""DynamoDB storage of items: keys, attribute mapping and every call the API makes.

Layout of the single table (key schema in template.yaml):

- ``pk`` (S) = ``OWNER#<owner>``: one partition per owner, so isolation is a key
  property, not a filter, and listing is a Query on one partition.
- ``sk`` (N) = the item id (>= 1). ``sk = 0`` holds the owner's id counter
  (``last_id``), bumped with an atomic ``ADD``; ids are never reused.
- ``name_folded`` is ``name.casefold()`` so ``q`` can match case-insensitively
  with ``contains`` in a filter expression.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from app.models import ItemCreate, ItemPublic

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, QueryInputTypeDef

COUNTER_SK = 0
# DynamoDB numbers keep 38 significant digits; no id can ever get this large.
MAX_ITEM_ID = 2**63 - 1
_PROJECTION = "sk, #name, description, price, quantity, tags, version, created_at, updated_at"
_NAMES = {"#name": "name"}
# A filtered page evaluates this many items per Query, at most this many times,
# so a sparse match costs bounded capacity; the cursor resumes where it stopped.
_FILTERED_EVALUATION_LIMIT = 100
_FILTERED_MAX_QUERIES = 3


class ItemNotFound(Exception):
    """The owner has no item with this id."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(owner: str, item_id: int) -> dict[str, "AttributeValueTypeDef"]:
    return {"pk": {"S": f"OWNER#{owner}"}, "sk": {"N": str(item_id)}}


def _item_key(owner: str, item_id: int) -> dict[str, "AttributeValueTypeDef"]:
    # Any integer >= 1 is a valid id in the URL; one too large to exist is simply not found.
    if item_id > MAX_ITEM_ID:
        raise ItemNotFound
    return _key(owner, item_id)


def _is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


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


def _to_item(attributes: dict[str, Any]) -> ItemPublic:
    description = attributes.get("description")
    return ItemPublic(
        id=int(attributes["sk"]["N"]),
        name=attributes["name"]["S"],
        description=description["S"] if description else None,
        price=Decimal(attributes["price"]["N"]),
        quantity=int(attributes["quantity"]["N"]),
        tags=[tag["S"] for tag in attributes["tags"]["L"]],
        version=int(attributes["version"]["N"]),
        created_at=attributes["created_at"]["S"],
        updated_at=attributes["updated_at"]["S"],
    )


@dataclass(frozen=True)
class ItemPage:
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
        if "Item" not in response:
            raise ItemNotFound
        return _to_item(response["Item"])

    def create(self, owner: str, item: ItemCreate) -> ItemPublic:
        """Assign the owner's next id and store the item."""
        counter = self._client.update_item(
            TableName=self._table,
            Key=_key(owner, COUNTER_SK),
            UpdateExpression="ADD last_id :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        item_id = int(counter["Attributes"]["last_id"]["N"])
        now = _now()
        attributes = {
            **_key(owner, item_id),
            **_client_fields(item.model_dump()),
            "version": {"N": "1"},
            "created_at": {"S": now},
            "updated_at": {"S": now},
        }
        self._client.put_item(
            TableName=self._table,
            Item=attributes,
            # The counter never hands out an id twice; this guards against a
            # counter reset ever overwriting an item.
            ConditionExpression="attribute_not_exists(pk)",
        )
        return _to_item(attributes)

    def update(self, owner: str, item_id: int, fields: dict[str, Any]) -> ItemPublic:
        """Set the given client fields (a full replace passes all of them), version + 1."""
        if not fields:
            return self.get(owner, item_id)
        values: dict[str, AttributeValueTypeDef] = {
            ":one": {"N": "1"},
            ":now": {"S": _now()},
        }
        names: dict[str, str] = {}
        assignments = ["version = version + :one", "updated_at = :now"]
        for attribute, value in _client_fields(fields).items():
            names[f"#{attribute}"] = attribute
            values[f":{attribute}"] = value
            assignments.append(f"#{attribute} = :{attribute}")
        expression = "SET " + ", ".join(assignments)
        if "description" in fields and fields["description"] is None:
            expression += " REMOVE description"
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=_item_key(owner, item_id),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names or None,  # type: ignore[arg-type]
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise ItemNotFound from error
            raise
        return _to_item(response["Attributes"])

    def delete(self, owner: str, item_id: int) -> None:
        """Delete the owner's item or raise ItemNotFound."""
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=_item_key(owner, item_id),
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise ItemNotFound from error
            raise

    def list_items(self, owner: str, *, after: int, limit: int, q: str = "", tag: str = "") -> ItemPage:
        """Items with id > after, in id order, matching the optional filters."""
        filters: list[str] = []
        values: dict[str, AttributeValueTypeDef] = {":pk": {"S": f"OWNER#{owner}"}}
        if q:
            filters.append("contains(name_folded, :q)")
            values[":q"] = {"S": q.casefold()}
        if tag:
            filters.append("contains(tags, :tag)")
            values[":tag"] = {"S": tag}
        # One more than a page tells whether another page exists without a
        # second round trip (and without handing out a cursor to an empty page).
        evaluate = max(limit + 1, _FILTERED_EVALUATION_LIMIT) if filters else limit + 1
        max_queries = _FILTERED_MAX_QUERIES if filters else 1
        items: list[ItemPublic] = []
        for _ in range(max_queries):
            values[":after"] = {"N": str(after)}
            request: QueryInputTypeDef = {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :pk AND sk > :after",
                "ProjectionExpression": _PROJECTION,
                "ExpressionAttributeNames": _NAMES,
                "ExpressionAttributeValues": values,
                "Limit": evaluate,
                "ConsistentRead": True,
            }
            if filters:
                request["FilterExpression"] = " AND ".join(filters)
            response = self._client.query(**request)
            items.extend(_to_item(attributes) for attributes in response["Items"])
            if len(items) > limit:
                return ItemPage(items[:limit], continue_after=items[limit - 1].id)
            last_key = response.get("LastEvaluatedKey")
            if last_key is None:
                return ItemPage(items, continue_after=None)
            after = int(last_key["sk"]["N"])
        return ItemPage(items, continue_after=after)
