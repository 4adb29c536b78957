"""The last line of defence: an exception that escaped the app gets its deliberate answer, else a 500."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.middleware.asgi_json import send_json
from app.middleware.response_headers import request_id
from app.observability import get_logger
from app.store.errors import WriteConflict
from items_core.dynamodb_errors import Answer, answer

RETRY_AFTER_SECONDS = 1
_RETRY_AFTER = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
# What each DynamoDB answer (items_core.dynamodb_errors) sends the client.
_ANSWERS = {
    Answer.UNAVAILABLE: (503, {"detail": "Service Unavailable"}, _RETRY_AFTER),
    Answer.CONFLICT: (409, {"detail": WriteConflict.detail}, _RETRY_AFTER),
    Answer.STORAGE_FULL: (507, {"detail": "The owner's storage is full; nothing was changed."}, []),
}


class UnhandledErrorMiddleware:
    """Turns an exception that escaped the app into its DynamoDB answer (503, 409, 507) or a generic 500.

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
            kind = answer(error)
            if kind is not None and kind in _ANSWERS:
                get_logger().warning(
                    "AWS dependency answered %s: %s",
                    kind.name,
                    type(error).__name__,
                    extra={"request_id": rid},
                    exc_info=True,
                )
                status, body, headers = _ANSWERS[kind]
            else:
                get_logger().exception(
                    "Unhandled error on %s %s", scope["method"], scope["path"], extra={"request_id": rid}
                )
                status, body, headers = 500, {"detail": "Internal Server Error", "request_id": rid}, []
            await send_json(send, status, body, headers)
