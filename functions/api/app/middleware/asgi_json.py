"""Complete JSON responses sent straight from pure ASGI middleware, before or instead of the app."""

import json
from typing import Any

from starlette.types import Send

Headers = list[tuple[bytes, bytes]]


async def send_raw(send: Send, status: int, headers: Headers, body: bytes) -> None:
    """Send a complete response whose headers and body are ready."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, body: Any, extra_headers: Headers | None = None) -> None:
    """Send `body` as a complete JSON response."""
    content = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    await send_raw(send, status, headers + (extra_headers or []), content)
