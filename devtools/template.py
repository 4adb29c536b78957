"""Reads template.yaml so local runs and tests use the deployed table schema, not a copy."""

import copy
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
# What create_table needs from AWS::DynamoDB::Table; the rest (encryption,
# recovery, deletion protection) has no meaning for a local table.
_TABLE_PROPERTIES = (
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "StreamSpecification",
)


class _TemplateLoader(yaml.SafeLoader):
    """A YAML loader that keeps CloudFormation's short tags (!Ref, !GetAtt, !Sub) as data."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:
        raise yaml.constructor.ConstructorError(
            None, None, f"unexpected node for !{tag_suffix}", node.start_mark
        )
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


@lru_cache(maxsize=8)
def _parsed(path: Path, modified_ns: int) -> dict[str, Any]:
    with path.open(encoding="utf-8") as file:
        template: dict[str, Any] = yaml.load(file, Loader=_TemplateLoader)  # noqa: S506 - SafeLoader subclass
    return template


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The SAM template as plain data (a fresh copy: callers may change it)."""
    return copy.deepcopy(_parsed(path, path.stat().st_mtime_ns))


def table_definition(template: dict[str, Any], logical_id: str = "ItemsTable") -> dict[str, Any]:
    """create_table keyword arguments for the template's table (without its name)."""
    resource = template["Resources"][logical_id]
    if resource["Type"] != "AWS::DynamoDB::Table":
        raise ValueError(f"{logical_id} is not an AWS::DynamoDB::Table")
    properties = resource["Properties"]
    definition = {key: properties[key] for key in _TABLE_PROPERTIES if key in properties}
    if "StreamSpecification" in definition:  # CloudFormation implies what the API spells out
        definition["StreamSpecification"] = {"StreamEnabled": True, **definition["StreamSpecification"]}
    return definition


def create_table(
    client: Any, table_name: str, template: dict[str, Any] | None = None, logical_id: str = "ItemsTable"
) -> None:
    """Create a table as template.yaml defines it (default: the items table) and wait until it is active."""
    template = template or load_template()
    definition = table_definition(template, logical_id)
    client.create_table(TableName=table_name, **definition)
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 0.1})
    ttl = template["Resources"][logical_id]["Properties"].get("TimeToLiveSpecification")
    if ttl:
        client.update_time_to_live(TableName=table_name, TimeToLiveSpecification=ttl)
    if logical_id == "ItemsTable":  # a new table holds nothing of an earlier layout
        from items_core.layout import new_table_row

        client.put_item(TableName=table_name, Item=new_table_row())


class TableMismatch(Exception):
    """A local table differs from template.yaml in a way DynamoDB cannot change in place (its keys)."""


def _indexes(description: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        index["IndexName"]: {"KeySchema": index["KeySchema"], "Projection": index["Projection"]}
        for index in description.get("GlobalSecondaryIndexes", [])
    }


def _wait_until_active(client: Any, table_name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        table = client.describe_table(TableName=table_name)["Table"]
        statuses = {table["TableStatus"]} | {
            index["IndexStatus"] for index in table.get("GlobalSecondaryIndexes", [])
        }
        if statuses == {"ACTIVE"}:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{table_name} is still {sorted(statuses)} after {timeout} s")
        time.sleep(0.1)


def sync_table(
    client: Any, table_name: str, template: dict[str, Any] | None = None, logical_id: str = "ItemsTable"
) -> list[str]:
    """Create the table from template.yaml, or bring an existing one in line; what changed, in words."""
    template = template or load_template()
    wanted = table_definition(template, logical_id)
    try:
        current = client.describe_table(TableName=table_name)["Table"]
    except client.exceptions.ResourceNotFoundException:
        create_table(client, table_name, template, logical_id)
        return [f"{table_name}: created from template.yaml"]
    # DynamoDB changes global indexes, the stream and TTL in place, never the keys or local indexes.
    local_indexes = {index["IndexName"] for index in current.get("LocalSecondaryIndexes", [])}
    if current["KeySchema"] != wanted["KeySchema"] or local_indexes != {
        index["IndexName"] for index in wanted.get("LocalSecondaryIndexes", [])
    }:
        raise TableMismatch(
            f"the local table {table_name} has other keys than template.yaml defines;"
            " start with empty tables: make run FRESH=1"
        )
    changes = []
    have, want = _indexes(current), _indexes(wanted)
    for name in sorted(have):
        if have[name] != want.get(name):
            client.update_table(
                TableName=table_name, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": name}}]
            )
            _wait_until_active(client, table_name)
            changes.append(f"{table_name}: index {name} deleted")
    for name in sorted(want):
        if have.get(name) != want[name]:
            client.update_table(
                TableName=table_name,
                AttributeDefinitions=wanted["AttributeDefinitions"],
                GlobalSecondaryIndexUpdates=[{"Create": {"IndexName": name, **want[name]}}],
            )
            _wait_until_active(client, table_name)
            changes.append(f"{table_name}: index {name} created")
    stream = current.get("StreamSpecification", {"StreamEnabled": False})
    wanted_stream = wanted.get("StreamSpecification", {"StreamEnabled": False})
    if stream != wanted_stream:
        if stream["StreamEnabled"]:
            client.update_table(TableName=table_name, StreamSpecification={"StreamEnabled": False})
        if wanted_stream["StreamEnabled"]:
            client.update_table(TableName=table_name, StreamSpecification=wanted_stream)
        changes.append(f"{table_name}: stream set to {wanted_stream.get('StreamViewType', 'off')}")
    ttl = template["Resources"][logical_id]["Properties"].get("TimeToLiveSpecification") or {}
    described = client.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    current_ttl = described.get("AttributeName") if described.get("TimeToLiveStatus") == "ENABLED" else None
    wanted_ttl = ttl["AttributeName"] if ttl.get("Enabled") else None
    if current_ttl != wanted_ttl:
        if current_ttl:
            client.update_time_to_live(
                TableName=table_name, TimeToLiveSpecification={"AttributeName": current_ttl, "Enabled": False}
            )
        if wanted_ttl:
            client.update_time_to_live(TableName=table_name, TimeToLiveSpecification=ttl)
        changes.append(f"{table_name}: TTL on {wanted_ttl or 'nothing'}")
    return changes


def function_entry(template: dict[str, Any], logical_id: str = "ApiFunction") -> tuple[Path, str]:
    """The function's code folder (its Lambda task root) and its handler path."""
    properties = template["Resources"][logical_id]["Properties"]
    return REPO_ROOT / properties["CodeUri"], properties["Handler"]
