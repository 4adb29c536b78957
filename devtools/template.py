"""Reads template.yaml so local runs and tests use the deployed table schema, not a copy."""

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


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The SAM template as plain data."""
    with path.open(encoding="utf-8") as file:
        template: dict[str, Any] = yaml.load(file, Loader=_TemplateLoader)  # noqa: S506 - SafeLoader subclass
    return template


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


def function_entry(template: dict[str, Any], logical_id: str = "ApiFunction") -> tuple[Path, str]:
    """The function's code folder (its Lambda task root) and its handler path."""
    properties = template["Resources"][logical_id]["Properties"]
    return REPO_ROOT / properties["CodeUri"], properties["Handler"]
