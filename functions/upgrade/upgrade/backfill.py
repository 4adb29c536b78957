"""The online backfill: one resumable pass over the items table that brings every row in line."""

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from items_core.layout import BACKFILLING, COMPLETE, CURRENT_LAYOUT, LAYOUT_KEY, STALE, layout_from_row
from items_core.rows import COUNTER_SK, is_live, owner_of, owner_pk, parse_tag_pk, tag_copy, tag_pk, tags_of

PAGE_ROWS = 100
# Longer than the API function's timeout (26 s) and the time an alias takes to move.
GRACE_SECONDS = 60
LEGACY_IDEMPOTENCY_SECONDS = 24 * 3600 + GRACE_SECONDS
# A run's last row and save may take this long after its deadline (the function's RetryBudget).
LEASE_MARGIN_SECONDS = 30
# Counting an owner again after ids were given out while it was counted: at most this often.
COUNT_ATTEMPTS = 3


@dataclass
class Progress:
    """What one run did (and its last page: what is added to the layout row's totals)."""

    state: str
    scanned: int = 0
    repaired: int = 0
    units: float = 0.0
    pages: int = 0
    page_scanned: int = 0
    page_repaired: int = 0


def reset(client: Any, table: str, now: float | None = None, *, state: str = BACKFILLING) -> str:
    """Start a new pass, or with STALE (a rollback) stop trusting the data until a deploy starts one."""
    now = time.time() if now is None else now
    generation = uuid.uuid4().hex
    row = {
        **LAYOUT_KEY,
        "layout": {"N": str(CURRENT_LAYOUT)},
        "state": {"S": state},
        "generation": {"S": generation},
        "not_before": {"N": str(int(now + GRACE_SECONDS))},
        "legacy_idempotency_until": {"N": str(int(now + LEGACY_IDEMPOTENCY_SECONDS))},
        "started_at": {"N": str(int(now))},
        "scanned": {"N": "0"},
        "repaired": {"N": "0"},
    }
    if state == BACKFILLING:
        # Tag copies complete under a layout whose code writes them stay complete: this pass
        # (and the code now deployed) keeps them so. A rollback marks them untrusted too.
        before = client.get_item(TableName=table, Key=LAYOUT_KEY, ConsistentRead=True).get("Item")
        if layout_from_row(before).copies_complete:
            row["copies"] = {"S": COMPLETE}
    client.put_item(TableName=table, Item=row)
    return generation


def _units(response: dict[str, Any]) -> float:
    """The capacity units a call consumed (one entry, or one per table for batches and transactions)."""
    consumed = response.get("ConsumedCapacity", [])
    parts = consumed if isinstance(consumed, list) else [consumed]
    return float(sum(part.get("CapacityUnits", 0.0) for part in parts))


def _is_conflict(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code")
    return code in {"ConditionalCheckFailedException", "TransactionCanceledException"}


class Backfill:
    """One run of the pass over `table`, within a capacity budget and a deadline."""

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        units_per_second: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table
        self._units_per_second = units_per_second
        self._clock = clock
        self._sleep = sleep

    def run(self, seconds: float, on_page: Callable[[Progress], None] | None = None) -> Progress:
        """Work for at most about `seconds`; what was done, and the pass's state after it."""
        started = self._clock()
        row = self._client.get_item(TableName=self._table, Key=LAYOUT_KEY, ConsistentRead=True).get("Item")
        if row is None or row["state"]["S"] == STALE or int(row["layout"]["N"]) != CURRENT_LAYOUT:
            # Only the deploy's custom resource starts a pass, once this code is live (a schedule
            # created with the stack may fire while the previous code still serves).
            return Progress("waiting")
        if row["state"]["S"] == COMPLETE:
            return Progress(COMPLETE)
        if started < float(row["not_before"]["N"]):
            return Progress("waiting")
        lease = self._take_lease(row, started + seconds + LEASE_MARGIN_SECONDS)
        if lease is None:
            return Progress("busy")
        generation = row["generation"]["S"]
        position = row.get("position", {}).get("M")
        progress = Progress(BACKFILLING)
        deadline = started + seconds
        try:
            while True:
                position, finished = self._page(position, progress, deadline)
                if not self._save(generation, lease, None if finished else position, progress):
                    progress.state = "superseded"  # a deploy started a new pass meanwhile
                    break
                if on_page is not None:
                    on_page(progress)
                if finished:
                    progress.state = COMPLETE
                    break
                if self._clock() >= deadline:
                    break
                self._pace(started, progress, deadline)
        finally:
            if progress.state == BACKFILLING:
                self._release(generation, lease)
        return progress

    def _take_lease(self, row: dict[str, Any], until: float) -> str | None:
        lease = uuid.uuid4().hex
        try:
            self._client.update_item(
                TableName=self._table,
                Key=LAYOUT_KEY,
                UpdateExpression="SET lease = :lease, lease_until = :until",
                ConditionExpression=(
                    "generation = :generation AND (attribute_not_exists(lease_until) OR lease_until < :now)"
                ),
                ExpressionAttributeValues={
                    ":lease": {"S": lease},
                    ":until": {"N": str(int(until) + 1)},
                    ":generation": row["generation"],
                    ":now": {"N": str(int(self._clock()))},
                },
            )
        except ClientError as error:
            if not _is_conflict(error):
                raise
            return None  # another run holds it, or a deploy reset the pass meanwhile
        return lease

    def _save(self, generation: str, lease: str, position: dict[str, Any] | None, progress: Progress) -> bool:
        """Record the position after a page (and the end of the pass): the next run starts there."""
        values: dict[str, Any] = {
            ":generation": {"S": generation},
            ":lease": {"S": lease},
            ":scanned": {"N": str(progress.page_scanned)},
            ":repaired": {"N": str(progress.page_repaired)},
        }
        totals = "scanned = scanned + :scanned, repaired = repaired + :repaired"
        if position is None:
            expression = f"SET #state = :complete, finished_at = :now, {totals}"
            expression += " REMOVE #position, lease, lease_until"
            values[":complete"] = {"S": COMPLETE}
            values[":now"] = {"N": str(int(self._clock()))}
        else:
            expression = f"SET #position = :position, {totals}"
            values[":position"] = {"M": position}
        names = {"#position": "position"} | ({"#state": "state"} if position is None else {})
        try:
            self._client.update_item(
                TableName=self._table,
                Key=LAYOUT_KEY,
                UpdateExpression=expression,
                ConditionExpression="generation = :generation AND lease = :lease",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if not _is_conflict(error):
                raise
            return False
        return True

    def _release(self, generation: str, lease: str) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=LAYOUT_KEY,
                UpdateExpression="REMOVE lease, lease_until",
                ConditionExpression="generation = :generation AND lease = :lease",
                ExpressionAttributeValues={":generation": {"S": generation}, ":lease": {"S": lease}},
            )
        except ClientError as error:
            if not _is_conflict(error):
                raise

    def _pace(self, started: float, progress: Progress, deadline: float) -> None:
        """Sleep until the units spent so far fit the budget (never past the deadline)."""
        wait = min(started + progress.units / self._units_per_second, deadline) - self._clock()
        if wait > 0:
            self._sleep(wait)

    def _page(
        self, position: dict[str, Any] | None, progress: Progress, deadline: float
    ) -> tuple[dict[str, Any] | None, bool]:
        """Bring one page's rows in line until the deadline: where to go on, and whether the table is done."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "Limit": PAGE_ROWS,
            "ConsistentRead": True,
            "ReturnConsumedCapacity": "TOTAL",
        }
        if position:
            request["ExclusiveStartKey"] = position
        response = self._client.scan(**request)
        progress.units += _units(response)
        progress.pages += 1
        progress.page_scanned = progress.page_repaired = 0
        for row in response["Items"]:
            if self._clock() >= deadline:
                return position, False
            repaired = self._reconcile(row, progress)
            progress.page_repaired += repaired
            progress.repaired += repaired
            progress.page_scanned += 1
            progress.scanned += 1
            position = {"pk": row["pk"], "sk": row["sk"]}  # Scan starts after any row's key, even mid-page
        last_key: dict[str, Any] | None = response.get("LastEvaluatedKey")
        return last_key, last_key is None

    def _reconcile(self, row: dict[str, Any], progress: Progress) -> int:
        """Bring one row in line; how many rows it wrote."""
        # Every write is conditioned on what was read: a page run twice, or a race with the API, never
        # undoes a newer write.
        owner = owner_of(row["pk"]["S"])
        if owner is not None:
            return self._reconcile_item(owner, row, progress)
        copy_of = parse_tag_pk(row["pk"]["S"])
        if copy_of is not None:
            return self._reconcile_copy(*copy_of, row, progress)
        return 0  # tombstones, the layout row, the release before's idempotency records

    def _reconcile_item(self, owner: str, row: dict[str, Any], progress: Progress) -> int:
        """A live tagged item gets the copies it lacks, or whose version is behind its own."""
        if int(row["sk"]["N"]) == COUNTER_SK:
            return self._count(owner, row, progress)
        if not is_live(row) or not tags_of(row):
            return 0
        keys = {tag_pk(owner, tag): tag for tag in tags_of(row)}
        found: dict[str, str] = {}
        request = {
            self._table: {
                "Keys": [{"pk": {"S": pk}, "sk": row["sk"]} for pk in keys],
                "ConsistentRead": True,
                "ProjectionExpression": "pk, version",
            }
        }
        while request:
            response = self._client.batch_get_item(RequestItems=request, ReturnConsumedCapacity="TOTAL")
            progress.units += _units(response)
            copies = response["Responses"][self._table]
            found.update((copy["pk"]["S"], copy["version"]["N"]) for copy in copies)
            request = response.get("UnprocessedKeys") or {}
        behind = [tag for pk, tag in keys.items() if found.get(pk) != row["version"]["N"]]
        return self._write_copies(owner, row, behind, progress) if behind else 0

    def _count(self, owner: str, counter: dict[str, Any], progress: Progress) -> int:
        """Write the owner's live items count on its counter row; 1 if it changed, else 0."""
        for _ in range(COUNT_ATTEMPTS):
            count = 0
            request: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :pk AND sk > :counter",
                # Rows of layout 1 (tombstones in the items' range) are not items.
                "FilterExpression": "attribute_exists(#name)",
                "ExpressionAttributeNames": {"#name": "name"},
                "ExpressionAttributeValues": {":pk": {"S": owner_pk(owner)}, ":counter": {"N": "0"}},
                "Select": "COUNT",
                "ConsistentRead": True,
                "ReturnConsumedCapacity": "TOTAL",
            }
            while True:
                response = self._client.query(**request)
                progress.units += _units(response)
                count += response["Count"]
                if "LastEvaluatedKey" not in response:
                    break
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
            # In-flight requests may still leave it one off each: a delete landing between count and write, or
            # a create that got its id before the counter was read and writes its item after the count.
            if counter.get("live_items", {}).get("N") == str(count):
                return 0
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key={"pk": counter["pk"], "sk": counter["sk"]},
                    UpdateExpression="SET live_items = :count",
                    ConditionExpression="last_id = :last_id",
                    ExpressionAttributeValues={":count": {"N": str(count)}, ":last_id": counter["last_id"]},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    ReturnConsumedCapacity="TOTAL",
                )
            except ClientError as error:
                if not _is_conflict(error):
                    raise
                counter = error.response.get("Item") or {}  # type: ignore[assignment]
                if "last_id" not in counter:
                    return 0
                continue  # an id was given out while counting: count again
            progress.units += 1.0
            return 1
        return 0  # the owner is creating faster than it can be counted: the next pass counts it

    def _reconcile_copy(self, owner: str, tag: str, copy: dict[str, Any], progress: Progress) -> int:
        """A copy follows its item: rewritten when behind it, deleted when the item left the tag."""
        response = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": owner_pk(owner)}, "sk": copy["sk"]},
            ConsistentRead=True,
            ReturnConsumedCapacity="TOTAL",
        )
        progress.units += _units(response)
        item: dict[str, Any] = response.get("Item") or {}
        if is_live(item) and tag in tags_of(item):
            if item["version"] == copy["version"]:
                return 0
            return self._write_copies(owner, item, [tag], progress)
        try:  # the item is gone or left the tag: the copy goes, unless it changed since it was read
            deleted = self._client.delete_item(
                TableName=self._table,
                Key={"pk": copy["pk"], "sk": copy["sk"]},
                ConditionExpression="version = :version",
                ExpressionAttributeValues={":version": copy["version"]},
                ReturnConsumedCapacity="TOTAL",
            )
        except ClientError as error:
            if not _is_conflict(error):
                raise
            return 0
        progress.units += _units(deleted)
        return 1

    def _write_copies(self, owner: str, item: dict[str, Any], tags: list[str], progress: Progress) -> int:
        """The item's copies for `tags`, if the item is still at the version read."""
        actions: list[dict[str, Any]] = [
            {
                "ConditionCheck": {
                    "TableName": self._table,
                    "Key": {"pk": item["pk"], "sk": item["sk"]},
                    "ConditionExpression": "version = :version",
                    "ExpressionAttributeValues": {":version": item["version"]},
                }
            },
            *({"Put": {"TableName": self._table, "Item": tag_copy(owner, item, tag)}} for tag in tags),
        ]
        try:
            response = self._client.transact_write_items(
                TransactItems=actions, ReturnConsumedCapacity="TOTAL"
            )
        except ClientError as error:
            if not _is_conflict(error):
                raise
            return 0  # the item changed meanwhile: the API wrote its copies with it
        progress.units += _units(response)
        return len(tags)
