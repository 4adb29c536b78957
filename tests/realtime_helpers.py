"""Helpers for the realtime tests: bounded waits for WebSocket messages, and moto's records of posts."""

import json
from typing import Any

import anyio
from starlette.testclient import WebSocketTestSession

WAIT_SECONDS = 10  # the local follower polls every 0.2 s; this only bounds a failing test


def receive_within(session: WebSocketTestSession, seconds: float = WAIT_SECONDS) -> dict[str, Any]:
    """The next JSON message of a TestClient WebSocket, failing (not hanging) if none comes in time."""

    async def receive() -> Any:
        with anyio.fail_after(seconds):
            return await session._send_rx.receive()  # TestClient's own receive has no timeout

    message = session.portal.call(receive)
    session._raise_on_close(message)
    decoded: dict[str, Any] = json.loads(message["text"])
    return decoded


def posted_messages(data: bytes) -> list[dict[str, Any]]:
    """The JSON documents moto's API Gateway Management API recorded for one connection (concatenated)."""
    decoder = json.JSONDecoder()
    text, messages, position = data.decode(), [], 0
    while position < len(text):
        message, position = decoder.raw_decode(text, position)
        messages.append(message)
    return messages
