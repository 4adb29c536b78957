"""The last line of defence: an exception that escaped the app becomes a 503 or a generic 500."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.middleware.asgi_json import send_json
from app.middleware.response_headers import request_id
from app.observability import get_logger
from app.store.errors import is_unavailable

RETRY_AFTER_SECONDS = 1


class UnhandledErrorMiddleware:
    """Turns an exception that escaped the app into 503 (AWS unavailable) or a generic 500.

    Logged once, with the stack trace and the request id the response carries.
    Starlette's ServerErrorMiddleware would answer in plain text and re-raise,
    so the error would be logged twice (by it and by Mangum or uvicorn).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as error:
            rid = request_id(scope)
            if started:
                get_logger().exception("Error after the response started", extra={"request_id": rid})
                raise
            if is_unavailable(error):
                get_logger().warning(
                    "AWS dependency unavailable: %s",
                    type(error).__name__,
                    extra={"request_id": rid},
                    exc_info=True,
                )
                status, body = 503, {"detail": "Service Unavailable"}
                headers = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
            else:
                get_logger().exception(
                    "Unhandled error on %s %s", scope["method"], scope["path"], extra={"request_id": rid}
                )
                status, body = 500, {"detail": "Internal Server Error", "request_id": rid}
                headers = []
            await send_json(send, status, body, headers)
