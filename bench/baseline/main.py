"""The minimal baseline: FastAPI + Mangum + boto3, one route doing one GetItem."""

import os

import boto3
from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()
client = boto3.client("dynamodb")
TABLE = os.environ["TABLE_NAME"]


@app.get("/items/{item_id}")
async def get_item(item_id: int) -> dict[str, object]:
    key = {"pk": {"S": "OWNER#bench"}, "sk": {"N": str(item_id)}}
    row = client.get_item(TableName=TABLE, Key=key).get("Item", {})
    return {"id": item_id, "name": row.get("name", {}).get("S")}


@app.post("/items", status_code=201)
async def create_item(body: dict[str, object]) -> dict[str, object]:
    client.put_item(TableName=TABLE, Item={"pk": {"S": "OWNER#bench"}, "sk": {"N": "1"}})
    return body


@app.get("/items")
async def list_items() -> dict[str, object]:
    rows = client.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "OWNER#bench"}},
        Limit=20,
    )["Items"]
    return {"items": [row["sk"]["N"] for row in rows]}


handler = Mangum(app, lifespan="off")
