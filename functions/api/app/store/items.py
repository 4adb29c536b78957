"""DynamoDB storage of items: keys, attribute mapping and every call the API makes."""

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from app.observability import get_logger
from app.store.errors import (
    ItemNotFound,
    ItemsQuotaFull,
    PreconditionFailed,
    WriteConflict,
    cancelled_rows,
    condition_failure_row,
)
from items_core.layout import LayoutReader
from items_core.models import ItemCreate, ItemPublic
from items_core.rows import (
    COUNTER_SK,
    deleted_pk,
    is_live,
    item_from_row,
    owner_pk,
    tag_copy,
    tag_pk,
    tags_of,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        DeleteTypeDef,
        PutTypeDef,
        QueryInputTypeDef,
        TransactWriteItemTypeDef,
    )

# The largest integer a JavaScript client holds exactly (Number.MAX_SAFE_INTEGER); ids count
# up from 1 per owner, so none gets near it (DynamoDB's numbers would keep 38 digits).
MAX_ITEM_ID = 2**53 - 1
TOMBSTONE_TTL_SECONDS = 24 * 3600
_PROJECTION = "sk, #name, description, price, quantity, tags, version, created_at, updated_at"
_NAMES = {"#name": "name"}
# A page filtered by `q` evaluates this many items per Query; any page makes at most
# MAX_QUERIES_PER_PAGE Queries, so a sparse match costs bounded capacity and time; the
# cursor resumes where it stopped.
FILTERED_EVALUATION_LIMIT = 100
MAX_QUERIES_PER_PAGE = 2
# "Live, and not yet changed by this request".
_LIVE_AND_NOT_MINE = (
    "attribute_exists(#name) AND (attribute_not_exists(write_token) OR write_token <> :token)"
)
# Writes that set no tags first assume the item has none (one plain call); a tagged item fails this and
# is written with its copies in one transaction, conditioned on the version its row showed.
_UNTAGGED = " AND size(tags) = :zero"

AnyVersion = Literal["*"]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _row_key(partition: str, item_id: int) -> dict[str, "AttributeValueTypeDef"]:
    return {"pk": {"S": partition}, "sk": {"N": str(item_id)}}


def _key(owner: str, item_id: int) -> dict[str, "AttributeValueTypeDef"]:
    return _row_key(owner_pk(owner), item_id)


def _item_key(owner: str, item_id: int) -> dict[str, "AttributeValueTypeDef"]:
    # Any integer >= 1 is a valid id in the URL; one too large to exist is simply not found.
    if item_id > MAX_ITEM_ID:
        raise ItemNotFound
    return _key(owner, item_id)


# botocore resends a write whose reply was lost: each write stores a fresh write_token, and our token in
# the row a failed condition returns (ALL_OLD) means it was applied, not a 404/412 or a second write.
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


def _check_current(row: dict[str, Any], if_match: list[int] | AnyVersion | None) -> None:
    """404 for an absent item, 412 when If-Match names none of its versions."""
    if not is_live(row):
        raise ItemNotFound
    if isinstance(if_match, list) and int(row["version"]["N"]) not in if_match:
        raise PreconditionFailed


@dataclass(frozen=True)
class StoredPage:
    """Items of one page and the id to continue after, if any."""

    items: list[ItemPublic]
    continue_after: int | None


class ItemStore:
    """Every DynamoDB call for items goes through here."""

    def __init__(
        self,
        client: "DynamoDBClient",
        table_name: str,
        layout: LayoutReader,
        *,
        items_quota: int = 0,
        single_attempt_client: "Callable[[], DynamoDBClient] | None" = None,
    ) -> None:
        self._client = client
        # A delete's count update may fail without failing the delete: one attempt is enough.
        self._single_attempt_client = single_attempt_client or (lambda: client)
        self._table = table_name
        self._layout = layout
        self._items_quota = items_quota  # 0: no quota

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
        if not is_live(row):
            raise ItemNotFound
        return item_from_row(row)  # type: ignore[arg-type]

    def _next_id(self, owner: str, token: str) -> int:
        """Give out the owner's next id and count the item, within its quota (ItemsQuotaFull)."""
        values: dict[str, AttributeValueTypeDef] = {
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            ":token": {"S": token},
        }
        condition = "(attribute_not_exists(write_token) OR write_token <> :token)"
        quota = self._items_quota
        if quota and self._layout.current().counts_complete:
            condition += " AND (attribute_not_exists(live_items) OR live_items < :quota)"
            values[":quota"] = {"N": str(quota)}
        try:
            counter = self._client.update_item(
                TableName=self._table,
                Key=_key(owner, COUNTER_SK),
                UpdateExpression="SET last_id = if_not_exists(last_id, :zero) + :one,"
                " write_token = :token ADD live_items :one",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            row = condition_failure_row(error)
            if row is None:
                raise
            if not _written_by(row, token):
                stored = row.get("live_items", {}).get("N")
                raise ItemsQuotaFull(quota, int(stored) if stored else None) from error
            return int(row["last_id"]["N"])  # our increment was applied; its reply was lost
        return int(counter["Attributes"]["last_id"]["N"])

    def _uncount(self, owner: str, token: str) -> None:
        """Take a deleted item off the owner's count (once, however often botocore resends it)."""
        try:
            self._single_attempt_client().update_item(
                TableName=self._table,
                Key=_key(owner, COUNTER_SK),
                UpdateExpression="SET write_token = :token ADD live_items :minus_one",
                # A counter no write of this release touched may have no write_token at all
                # (a comparison with a missing attribute is false in DynamoDB).
                ConditionExpression="attribute_exists(last_id)"
                " AND (attribute_not_exists(write_token) OR write_token <> :token)",
                ExpressionAttributeValues={":token": {"S": token}, ":minus_one": {"N": "-1"}},
            )
        except (ClientError, BotoCoreError):
            # Applied already (a lost reply), or failed: the item is deleted either way, and a
            # count one too high only errs on the strict side until the next pass recounts.
            get_logger().warning("the deleted item was not taken off its owner's count", exc_info=True)

    def _tag_copies(self, owner: str, row: dict[str, Any]) -> list["TransactWriteItemTypeDef"]:
        """Puts of the item's copy into each of its tags' partitions."""
        return [
            {"Put": {"TableName": self._table, "Item": tag_copy(owner, row, tag)}} for tag in tags_of(row)
        ]

    def _tag_removals(self, owner: str, item_id: int, tags: list[str]) -> list["TransactWriteItemTypeDef"]:
        return [
            {"Delete": {"TableName": self._table, "Key": _row_key(tag_pk(owner, tag), item_id)}}
            for tag in tags
        ]

    def _transact(self, items: list["TransactWriteItemTypeDef"]) -> None:
        """One atomic write; the first action is always the item's own row (condition_failure_row)."""
        self._client.transact_write_items(TransactItems=items)

    def create(self, owner: str, item: ItemCreate) -> ItemPublic:
        """Assign the owner's next id and store the item (and its tag copies)."""
        token = uuid.uuid4().hex
        item_id = self._next_id(owner, token)
        now = _now()
        row = {
            **_key(owner, item_id),
            **_client_fields(item.model_dump()),
            "version": {"N": "1"},
            "created_at": {"S": now},
            "updated_at": {"S": now},
            "write_token": {"S": token},
        }
        put: PutTypeDef = {
            "TableName": self._table,
            "Item": row,
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        try:
            if item.tags:
                self._transact([{"Put": put}, *self._tag_copies(owner, row)])
            else:
                self._client.put_item(**put)
        except ClientError as error:
            current = condition_failure_row(error)
            if current is None or not _written_by(current, token):
                raise
        return item_from_row(row)

    def update(
        self,
        owner: str,
        item_id: int,
        fields: dict[str, Any],
        *,
        if_match: list[int] | AnyVersion | None = None,
        charge_rows: "Callable[[int], None] | None" = None,
    ) -> ItemPublic:
        """Set the given client fields (a full replace passes all of them), version + 1."""
        if not fields:
            unchanged = self.get(owner, item_id)
            if isinstance(if_match, list) and unchanged.version not in if_match:
                raise PreconditionFailed
            return unchanged
        token = uuid.uuid4().hex
        now = _now()
        if fields.get("tags"):  # the item will carry tags: its copies are written with it
            read = self._client.get_item(
                TableName=self._table, Key=_item_key(owner, item_id), ConsistentRead=True
            )
            row: dict[str, Any] = dict(read.get("Item", {}))
            _check_current(row, if_match)
            return self._update_with_tags(owner, row, fields, token, now, if_match, charge_rows)
        values: dict[str, AttributeValueTypeDef] = {
            ":one": {"N": "1"},
            ":zero": {"N": "0"},
            ":now": {"S": now},
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
        condition = _LIVE_AND_NOT_MINE + _version_condition(if_match, values) + _UNTAGGED
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
            current = condition_failure_row(error)
            if current is None:
                raise
            if _written_by(current, token):
                return item_from_row(current)  # applied; its reply was lost
            _check_current(current, if_match)
            # The item carries tags: rewrite it with its copies, from the row just returned.
            return self._update_with_tags(owner, current, fields, token, now, if_match, charge_rows)
        return item_from_row(response["Attributes"])

    def _update_with_tags(
        self,
        owner: str,
        current: dict[str, Any],
        fields: dict[str, Any],
        token: str,
        now: str,
        if_match: list[int] | AnyVersion | None,
        charge_rows: "Callable[[int], None] | None" = None,
    ) -> ItemPublic:
        """Write the item and its tag copies in one transaction, if it is still at `current`'s version."""
        row = {name: value for name, value in current.items() if name not in ("write_token", "description")}
        if "description" in current and "description" not in fields:
            row["description"] = current["description"]
        row.update(_client_fields(fields))
        version = int(current["version"]["N"])
        row.update(
            {"version": {"N": str(version + 1)}, "updated_at": {"S": now}, "write_token": {"S": token}}
        )
        item_id = int(current["sk"]["N"])
        kept = set(tags_of(row))
        actions: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": row,
                    "ConditionExpression": "version = :version",
                    "ExpressionAttributeValues": {":version": {"N": str(version)}},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            *self._tag_copies(owner, row),
            *self._tag_removals(owner, item_id, [tag for tag in tags_of(current) if tag not in kept]),
        ]
        if charge_rows is not None:
            charge_rows(len(actions))  # the owner's write units: what it raises stops the write
        try:
            self._transact(actions)
        except ClientError as error:
            latest = condition_failure_row(error)
            if latest is None:
                raise
            if _written_by(latest, token):
                return item_from_row(row)
            _check_current(latest, if_match)
            raise WriteConflict from error  # changed since `current` was read: nothing written
        return item_from_row(row)

    def delete(
        self,
        owner: str,
        item_id: int,
        *,
        if_match: list[int] | AnyVersion | None = None,
        charge_rows: "Callable[[int], None] | None" = None,
    ) -> None:
        """Delete the item and its tag copies, leaving a tombstone (ItemNotFound, PreconditionFailed)."""
        token = uuid.uuid4().hex
        values: dict[str, AttributeValueTypeDef] = {":zero": {"N": "0"}}
        condition = "attribute_exists(#name)" + _version_condition(if_match, values) + _UNTAGGED
        try:
            self._delete(owner, item_id, token, condition, values, tags=[])
            self._uncount(owner, token)
            return
        except ClientError as error:
            current = condition_failure_row(error)
            if current is None:
                raise
            _check_current(current, if_match)
        # The item carries tags: delete it with its copies, if it is still at that version.
        if charge_rows is not None:
            charge_rows(2 + len(tags_of(current)))  # the item, its tombstone, its copies
        try:
            self._delete(
                owner,
                item_id,
                token,
                "version = :version",
                {":version": current["version"]},
                tags_of(current),
            )
        except ClientError as error:
            latest = condition_failure_row(error)
            if latest is None:
                raise
            _check_current(latest, if_match)
            raise WriteConflict from error  # changed since it was read: nothing written
        self._uncount(owner, token)

    def _delete(
        self,
        owner: str,
        item_id: int,
        token: str,
        condition: str,
        values: dict[str, "AttributeValueTypeDef"],
        tags: list[str],
    ) -> None:
        tombstone: PutTypeDef = {
            "TableName": self._table,
            "Item": {
                **_row_key(deleted_pk(owner), item_id),
                "write_token": {"S": token},
                "expires_at": {"N": str(int(time.time()) + TOMBSTONE_TTL_SECONDS)},
            },
            # Our own tombstone already there: this is a retry of an applied delete.
            "ConditionExpression": "attribute_not_exists(write_token) OR write_token <> :token",
            "ExpressionAttributeValues": {":token": {"S": token}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        delete: DeleteTypeDef = {
            "TableName": self._table,
            "Key": _item_key(owner, item_id),
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if "#name" in condition:
            delete["ExpressionAttributeNames"] = _NAMES
        try:
            self._transact(
                [{"Delete": delete}, {"Put": tombstone}, *self._tag_removals(owner, item_id, tags)]
            )
        except ClientError as error:
            rows = cancelled_rows(error)
            if len(rows) > 1 and rows[1] is not None and _written_by(rows[1], token):
                return  # applied by an earlier attempt whose reply was lost
            raise

    def list_items(self, owner: str, *, after: int, limit: int, q: str = "", tag: str = "") -> StoredPage:
        """Items with id > after, in id order, matching the optional filters."""
        # Until the upgrade's backfill has written every item's tag copies, a `tag` listing
        # filters the owner's items as the release before did (items_core/layout.py).
        from_copies = bool(tag) and self._layout.current().copies_complete
        partition = tag_pk(owner, tag) if from_copies else owner_pk(owner)
        # Skips rows left by the previous layout, whose tombstones shared the
        # items' range (gone by TTL within 24 h of upgrading).
        filters = ["attribute_exists(#name)"]
        values: dict[str, AttributeValueTypeDef] = {":pk": {"S": partition}}
        if tag and not from_copies:
            filters.append("contains(tags, :tag)")
            values[":tag"] = {"S": tag}
        if q:
            filters.append("contains(name_folded, :q)")
            values[":q"] = {"S": q.casefold()}
        filtered = len(filters) > 1
        items: list[ItemPublic] = []
        # Unfiltered and `tag` pages need a second Query only when DynamoDB stopped the first at
        # its 1 MB per Query (a page of 100 of the largest items is over 1 MB: tests/test_dynamodb_limits.py).
        for _ in range(MAX_QUERIES_PER_PAGE):
            # One more than a page tells whether another page exists without a
            # second round trip (and without handing out a cursor to an empty page).
            evaluate = max(limit + 1, FILTERED_EVALUATION_LIMIT) if filtered else limit + 1 - len(items)
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
        # The read budget ran out: continue after the last row read, unless no id beyond it exists yet.
        return StoredPage(items, continue_after=after if after < self._last_id(owner) else None)

    def _last_id(self, owner: str) -> int:
        """The highest id the owner has been given (0 for none)."""
        response = self._client.get_item(
            TableName=self._table,
            Key=_key(owner, COUNTER_SK),
            ProjectionExpression="last_id",
            ConsistentRead=True,
        )
        return int(response.get("Item", {}).get("last_id", {}).get("N", "0"))
