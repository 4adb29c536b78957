"""The floor: FastAPI + Mangum + one botocore DynamoDB client, one route (what any such app pays)."""

import os
from typing import Any

import botocore.session
from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()
client: Any = botocore.session.get_session().create_client("dynamodb")
TABLE = os.environ["TABLE_NAME"]


@app.get("/items/{item_id}")
async def get_item(item_id: int) -> dict[str, object]:
    key = {"pk": {"S": "OWNER#bench"}, "sk": {"N": str(item_id)}}
    row = client.get_item(TableName=TABLE, Key=key).get("Item", {})
    return {"id": item_id, "name": row.get("name", {}).get("S")}


handler = Mangum(app, lifespan="off")
