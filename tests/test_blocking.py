"""Blocking DynamoDB calls: in a worker thread when requests share an event loop, inline on Lambda."""

import asyncio
import threading
from typing import Any

import httpx
from fastapi import FastAPI

from app import dependencies
from items_core.layout import LayoutReader
from tests.conftest import LambdaContext, http_api_event, lambda_handler


def test_a_slow_dynamodb_call_does_not_hold_the_other_requests_of_a_server(
    local_app: FastAPI, auth: Any
) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow_first_get(params: dict[str, Any], **_: Any) -> None:
        if params["Key"]["sk"]["N"] == "1":
            entered.set()
            release.wait(10)  # inline, this would hold the event loop until the timeout

    async def scenario() -> list[str]:
        finished: list[str] = []
        transport = httpx.ASGITransport(app=local_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def get(item_id: int) -> None:
                response = await client.get(f"/items/{item_id}", headers=auth("alice"))
                assert response.status_code == 404
                finished.append(f"GET /items/{item_id}")

            slow = asyncio.create_task(get(1))
            await asyncio.to_thread(entered.wait, 5)
            await asyncio.wait_for(get(2), timeout=5)
            release.set()
            await slow
        return finished

    dependencies.get_dynamodb_client().meta.events.register(
        "provide-client-params.dynamodb.GetItem", slow_first_get
    )
    loop = asyncio.new_event_loop()  # not asyncio.run, which leaves the thread without a loop for Mangum
    try:
        assert loop.run_until_complete(scenario()) == ["GET /items/2", "GET /items/1"]
    finally:
        loop.close()


def test_on_lambda_dynamodb_is_called_in_the_invocations_own_thread(app: FastAPI) -> None:
    threads: list[int] = []
    dependencies.get_dynamodb_client().meta.events.register(
        "before-call.dynamodb", lambda **_: threads.append(threading.get_ident())
    )
    handler = lambda_handler()
    key = {"Idempotency-Key": "k-1"}  # the key's claim and record are DynamoDB calls too
    event = http_api_event("POST", "/items", owner="alice", body={"name": "a", "price": 1}, headers=key)
    created = handler(event, LambdaContext())
    assert created["statusCode"] == 201
    assert handler(http_api_event("GET", "/items/1", owner="alice"), LambdaContext())["statusCode"] == 200
    assert len(threads) >= 4  # claim, create, record, get
    assert set(threads) == {threading.get_ident()}


def test_the_layout_client_is_made_once_however_many_threads_read_the_layout_first(app: FastAPI) -> None:
    made: list[int] = []
    start = threading.Barrier(16)

    def make_client() -> Any:
        made.append(threading.get_ident())
        return dependencies.get_dynamodb_client()

    reader = LayoutReader(make_client, "items-test")

    def first_read() -> None:
        start.wait()
        reader.current()

    threads = [threading.Thread(target=first_read) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1
