"""Realtime item changes on the local server (`make run`): FastAPI's WebSocket route at /ws."""

import asyncio
import contextlib
import os
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.responses import PlainTextResponse
from starlette.websockets import WebSocketDisconnect

from app.auth import NotAuthenticated, OwnerNotUsable, authenticate
from app.observability import REFUSED_HANDSHAKE, get_logger
from app.settings import get_settings
from items_core.aws_clients import botocore_session
from items_core.bearer import bearer_token
from items_core.messages import (
    INVALID_TOKEN,
    MAX_CONNECTIONS_PER_OWNER,
    MISSING_TOKEN,
    OwnerChange,
    change_from_stream_record,
    reply_to,
    too_many_connections,
)

# A client this far behind is disconnected (1013, "try again later") rather
# than holding the server's memory.
MAX_PENDING_MESSAGES = 1000
POLL_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 5.0


class Hub:
    """The open sockets of each owner, on the server's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queues: dict[str, set[asyncio.Queue[str | None]]] = defaultdict(set)

    def subscribe(self, owner: str) -> "asyncio.Queue[str | None] | None":
        """A queue of the owner's messages (a None: too far behind), or None at MAX_CONNECTIONS_PER_OWNER."""
        if len(self._queues.get(owner, ())) >= MAX_CONNECTIONS_PER_OWNER:
            return None
        queue: asyncio.Queue[str | None] = asyncio.Queue(MAX_PENDING_MESSAGES)
        self._queues[owner].add(queue)
        return queue

    def unsubscribe(self, owner: str, queue: "asyncio.Queue[str | None]") -> None:
        """Stop delivering to this queue."""
        self._queues[owner].discard(queue)
        if not self._queues[owner]:
            del self._queues[owner]

    def publish(self, change: OwnerChange) -> None:
        """Deliver a change to its owner's sockets; callable from any thread."""
        self._loop.call_soon_threadsafe(self._deliver, change.owner, change.change.to_json())

    def _deliver(self, owner: str, message: str) -> None:
        for queue in list(self._queues.get(owner, ())):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                self.unsubscribe(owner, queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)


class StreamFollower:
    """Reads the items table's stream from a thread and publishes each change, in order."""

    def __init__(self, dynamodb: Any, streams: Any, table_name: str, hub: Hub) -> None:
        self._dynamodb = dynamodb
        self.streams = streams  # public: tests inject failures into its calls
        self._table = table_name
        self._hub = hub
        self._stop = threading.Event()
        self._iterators: dict[str, str] = {}
        self._last: dict[str, str] = {}  # per shard: the sequence number of the last record read
        self._thread = threading.Thread(target=self._run, name="stream-follower", daemon=True)

    def start(self) -> None:
        """Position at the stream's end (changes from now on), then follow it in the background."""
        self._arn = self._dynamodb.describe_table(TableName=self._table)["Table"]["LatestStreamArn"]
        self._discover_shards("LATEST")
        self._thread.start()

    def stop(self) -> None:
        """Stop following and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _discover_shards(self, position: str) -> None:
        shards = self.streams.describe_stream(StreamArn=self._arn)["StreamDescription"]["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators and not shard.get("SequenceNumberRange", {}).get(
                "EndingSequenceNumber"
            ):
                self._iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self._arn, ShardId=shard_id, ShardIteratorType=position
                )["ShardIterator"]

    def _iterator(self, shard_id: str, after: str | None) -> str:
        position: dict[str, str] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
            if after
            else {"ShardIteratorType": "LATEST"}
        )
        iterator: str = self.streams.get_shard_iterator(StreamArn=self._arn, ShardId=shard_id, **position)[
            "ShardIterator"
        ]
        return iterator

    def _read(self, shard_id: str) -> None:
        try:
            response = self.streams.get_records(ShardIterator=self._iterators[shard_id], Limit=1000)
        except (
            self.streams.exceptions.TrimmedDataAccessException,
            self.streams.exceptions.ExpiredIteratorException,
        ):
            # The iterator no longer points at readable records: go on after the last change delivered.
            get_logger().warning("stream iterator of %s reset", shard_id)
            self._iterators[shard_id] = self._iterator(shard_id, self._last.get(shard_id))
            return
        read_at = datetime.now(UTC)
        for record in response["Records"]:
            change = change_from_stream_record(_stamped(record, read_at))
            if change is not None:
                self._hub.publish(change)
            self._last[shard_id] = record["dynamodb"]["SequenceNumber"]
        if response.get("NextShardIterator"):
            self._iterators[shard_id] = response["NextShardIterator"]
        else:
            del self._iterators[shard_id]  # the shard closed

    def _run(self) -> None:
        failures = 0
        while not self._stop.wait(min(POLL_SECONDS * 2**failures, MAX_BACKOFF_SECONDS)):
            try:
                self._discover_shards("TRIM_HORIZON")  # a shard opened since: all of it is new
                for shard_id in list(self._iterators):
                    self._read(shard_id)
                failures = 0
            except Exception:  # a local dev aid: report it, back off, keep following
                if failures == 0:
                    get_logger().exception("stream follower failed; retrying")
                failures = min(failures + 1, 5)


def _stamped(record: dict[str, Any], read_at: datetime) -> dict[str, Any]:
    """The record with its change time to the second, taken from when the follower read it."""
    # DynamoDB Local rounds ApproximateCreationDateTime down to the minute (AWS gives seconds): a deletion
    # would seem older than the update before it. Read every POLL_SECONDS, the read time is the change's.
    stamp = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
    if not isinstance(stamp, datetime) or stamp.second or stamp.microsecond:
        return record
    if not timedelta(0) <= read_at - stamp < timedelta(minutes=1):
        return record
    return {**record, "dynamodb": {**record["dynamodb"], "ApproximateCreationDateTime": read_at}}


def _clients(endpoint_url: str | None) -> tuple[Any, Any]:
    # Its own clients: the follower's calls (DescribeTable, Streams) are none of the app's.
    session = botocore_session()
    return (
        session.create_client("dynamodb", endpoint_url=endpoint_url),
        session.create_client("dynamodbstreams", endpoint_url=endpoint_url),
    )


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Under uvicorn (never in Lambda): follow the stream while the server runs, if switched on."""
    if os.environ.get("LOCAL_REALTIME", "").lower() != "true":
        yield
        return
    settings = get_settings()
    hub = Hub(asyncio.get_running_loop())
    dynamodb, streams = _clients(settings.dynamodb_endpoint_url)
    follower = StreamFollower(dynamodb, streams, settings.table_name, hub)
    await anyio.to_thread.run_sync(follower.start)
    app.state.live_hub = hub
    app.state.live_follower = follower
    try:
        yield
    finally:
        del app.state.live_hub
        del app.state.live_follower
        await anyio.to_thread.run_sync(follower.stop)


router = APIRouter()


def _token(websocket: WebSocket) -> str | None:
    if websocket.query_params.get("token"):
        return websocket.query_params["token"]
    return bearer_token(websocket.headers.get("authorization"))


async def _refuse(websocket: WebSocket, status: int, detail: str) -> None:
    # An HTTP answer to the handshake where the server supports it (uvicorn,
    # TestClient); otherwise close code 1008 (policy violation).
    # The body is the deployed `$connect`'s, word for word (items_core.messages).
    REFUSED_HANDSHAKE.set(f"{status} {detail}")  # an expected answer: devtools.logs logs it at INFO
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(PlainTextResponse(detail, status_code=status))
    else:
        await websocket.close(code=1008, reason=detail)


async def _forward(websocket: WebSocket, queue: "asyncio.Queue[str | None]") -> None:
    while (message := await queue.get()) is not None:
        await websocket.send_text(message)
    await websocket.close(code=1013, reason="too far behind; reconnect")


async def _answer(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        await websocket.send_text(reply_to(message.get("text")))


@router.websocket("/ws")
async def live_changes(websocket: WebSocket) -> None:
    """Every change to the caller's items, as JSON messages (see items_core.messages)."""
    hub: Hub | None = getattr(websocket.app.state, "live_hub", None)
    if hub is None:
        await _refuse(websocket, 503, "realtime is served here only by the local server (make run)")
        return
    token = _token(websocket)
    if not token:
        await _refuse(websocket, 401, MISSING_TOKEN)
        return
    try:
        owner = authenticate(websocket.scope, token)
    except OwnerNotUsable as error:
        await _refuse(websocket, 403, str(error))
        return
    except NotAuthenticated:  # an invalid token, or one without the scope, as deployed
        await _refuse(websocket, 401, INVALID_TOKEN)
        return
    queue = hub.subscribe(owner)
    if queue is None:
        await _refuse(websocket, 429, too_many_connections(MAX_CONNECTIONS_PER_OWNER))
        return
    try:
        await websocket.accept()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_forward, websocket, queue)
            await _answer(websocket)
            tasks.cancel_scope.cancel()
    except WebSocketDisconnect:
        pass
    finally:
        hub.unsubscribe(owner, queue)
