"""devtools/moto_transactions.py: moto's transactions without the whole-table backup mean the same."""

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import TABLE_NAME


def _key(sk: int) -> dict[str, Any]:
    return {"pk": {"S": "P"}, "sk": {"N": str(sk)}}


def _stream_records(dynamodb: Any) -> int:
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends["123456789012"]["us-east-1"].tables[TABLE_NAME]
    return len(table.stream_shard.items)


def test_a_cancelled_transaction_changes_nothing_and_streams_nothing(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE_NAME, Item={**_key(1), "v": {"N": "1"}})
    dynamodb.put_item(TableName=TABLE_NAME, Item={**_key(2), "v": {"N": "1"}})
    before = dynamodb.scan(TableName=TABLE_NAME)["Items"]
    records = _stream_records(dynamodb)
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Put": {"TableName": TABLE_NAME, "Item": {**_key(3), "v": {"N": "1"}}}
                },  # applied by moto, then undone
                {"Delete": {"TableName": TABLE_NAME, "Key": _key(2)}},
                {
                    "Update": {
                        "TableName": TABLE_NAME,
                        "Key": _key(1),
                        "UpdateExpression": "SET v = :two",
                        "ConditionExpression": "v = :zero",
                        "ExpressionAttributeValues": {":two": {"N": "2"}, ":zero": {"N": "0"}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
            ]
        )
    reasons = raised.value.response["CancellationReasons"]
    assert [reason["Code"] for reason in reasons] == ["None", "None", "ConditionalCheckFailed"]
    assert reasons[2]["Item"] == {**_key(1), "v": {"N": "1"}}
    assert dynamodb.scan(TableName=TABLE_NAME)["Items"] == before
    assert _stream_records(dynamodb) == records


def test_an_applied_transaction_streams_each_change_with_its_old_image(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE_NAME, Item={**_key(1), "v": {"N": "1"}})
    records = _stream_records(dynamodb)
    dynamodb.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": TABLE_NAME,
                    "Key": _key(1),
                    "UpdateExpression": "SET v = :two",
                    "ExpressionAttributeValues": {":two": {"N": "2"}},
                }
            },
            {"Put": {"TableName": TABLE_NAME, "Item": {**_key(2), "v": {"N": "1"}}}},
        ]
    )
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends["123456789012"]["us-east-1"].tables[TABLE_NAME]
    update, put = table.stream_shard.items[records:]
    assert update.record["dynamodb"]["OldImage"]["v"] == {"N": "1"}
    assert update.record["dynamodb"]["NewImage"]["v"] == {"N": "2"}
    assert put.record["eventName"] == "INSERT"
