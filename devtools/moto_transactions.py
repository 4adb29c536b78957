"""moto's TransactWriteItems, made to cost what the transaction touches (tests and `make run`).

moto 5 backs up every table a transaction names with ``copy.deepcopy`` (items,
indexes and the whole change stream) before each TransactWriteItems, so each
write to a tagged item and each delete costs time and memory in proportion to
the table: thousands of them take minutes and gigabytes. DynamoDB's own
semantics are simpler: all actions apply or none does. This keeps moto's
evaluation of every action (conditions, ALL_OLD, cancellation reasons) and
replaces only the backup: the rows the actions name are saved, and on
cancellation they, and the table's change stream, are put back as they were.
"""

import copy
import types
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

_ORIGINAL = DynamoDBBackend.transact_write_items


def _deepcopy_but_tables(value: Any, *args: Any) -> Any:
    return value if isinstance(value, Table) else copy.deepcopy(value, *args)


_NO_TABLE_COPY = types.SimpleNamespace(deepcopy=_deepcopy_but_tables)


def _key_of(table: Any, attributes: dict[str, Any]) -> tuple[DynamoType, DynamoType | None]:
    hash_value = DynamoType(attributes[table.hash_key_attr])
    range_value = DynamoType(attributes[table.range_key_attr]) if table.range_key_attr else None
    return hash_value, range_value


def _restore(table: Any, key: tuple[DynamoType, DynamoType | None], row: Any) -> None:
    hash_value, range_value = key
    if range_value is None:
        if row is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = row
    elif row is None:
        table.items[hash_value].pop(range_value, None)
    else:
        table.items[hash_value][range_value] = row


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    saved: list[tuple[Any, tuple[DynamoType, DynamoType | None], Any]] = []
    streams: dict[int, tuple[Any, int]] = {}
    for entry in transact_items:
        _action, operation = next(iter(entry.items()))
        table = self.tables.get(operation.get("TableName", ""))
        attributes = operation.get("Key") or operation.get("Item")
        if table is None or not attributes:
            continue  # the original reports it
        key = _key_of(table, attributes)
        saved.append((table, key, copy.deepcopy(table.get_item(*key))))
        if table.stream_shard is not None:
            streams[id(table)] = (table.stream_shard, len(table.stream_shard.items))
    try:
        _ORIGINAL(self, transact_items)
    except Exception:
        for table, key, row in reversed(saved):
            _restore(table, key, row)
        for shard, length in streams.values():
            del shard.items[length:]
        raise


def install() -> Callable[[], None]:
    """Use the cheap backup; returns a function that puts moto's own back."""
    module = _ORIGINAL.__globals__
    module["copy"] = _NO_TABLE_COPY  # the module's `copy`: everything is copied as before, but tables
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]

    def uninstall() -> None:
        module["copy"] = copy
        DynamoDBBackend.transact_write_items = _ORIGINAL  # type: ignore[method-assign]

    return uninstall
