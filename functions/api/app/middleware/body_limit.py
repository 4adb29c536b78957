"""Refuses request bodies over the limit with 413, before anything parses them."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.middleware.asgi_json import send_json

MAX_BODY_BYTES = 16 * 1024
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_TOO_LARGE = {"detail": f"Request body too large: the limit is {MAX_BODY_BYTES} bytes"}


class BodyLimitMiddleware:
    """Reads at most MAX_BODY_BYTES + 1 bytes; a declared or actual larger body is a 413.

    Content-Length is only a hint: a body that turns out longer than declared
    (or arrives without the header) is counted as it is read.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only these methods have routes that read a body; any other is never read.
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY_BYTES):
                await send_json(send, 413, _TOO_LARGE, [(b"connection", b"close")])
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await send_json(send, 413, _TOO_LARGE, [(b"connection", b"close")])
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
