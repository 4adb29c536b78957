"""`make run`'s server tells the truth (issue 21): what its log says is what the client got.

The local app runs under uvicorn, with `make run`'s options and logging configuration, in this
process: clients that go away mid-body, malformed bodies, bodies that stall, refused WebSocket
handshakes and frames of every size, each sent over a raw socket or a WebSocket client.
"""

import io
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from app import edge, observability, settings
from devtools.logs import uvicorn_log_config
from devtools.run import LOCAL_SERVER_OPTIONS

pytestmark = pytest.mark.slow
Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def served(local_app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, Lines, io.StringIO]]:
    """The local app under uvicorn as `make run` configures it: the port, the app's log lines and
    uvicorn's console (its configured handler, filters included, writing to a buffer)."""
    monkeypatch.setattr(edge, "REQUEST_BODY_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setenv("LOCAL_REALTIME", "true")  # /ws, as make run serves it
    settings.get_settings.cache_clear()
    buffer = io.StringIO()
    observability.LOG_STREAM.target = buffer
    config = uvicorn.Config(
        local_app,
        host="127.0.0.1",
        port=0,
        log_config=uvicorn_log_config(),
        log_level="info",
        **LOCAL_SERVER_OPTIONS,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    console = io.StringIO()
    (handler,) = logging.getLogger("uvicorn").handlers  # LOGGING_CONFIG's "default", on stderr
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(console)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]

    try:
        yield port, lines, console
    finally:
        handler.setStream(previous)
        server.should_exit = True
        thread.join(timeout=10)
        observability.LOG_STREAM.target = None


def _request_line(lines: Lines, method: str) -> dict[str, Any]:
    for _ in range(100):
        found = [line for line in lines() if line.get("message") == "request" and line["method"] == method]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no request line for {method}: {lines()}")


def _raw(port: int, data: bytes, *, close: bool) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        if close:
            return b""
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def _post_head(token: str, extra: str) -> bytes:
    return (
        f"POST /items HTTP/1.1\r\nHost: local\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


def test_a_client_gone_mid_body_is_logged_as_aborted_not_as_a_500(
    served: tuple[int, Lines, io.StringIO], auth: Any
) -> None:
    port, lines, console = served
    token = auth("alice")["Authorization"].split()[1]
    _raw(port, _post_head(token, "Content-Length: 100\r\n") + b'{"name": "La', close=True)
    line = _request_line(lines, "POST")
    assert (line["status"], line["aborted"]) == (499, True)
    assert not [entry for entry in lines() if entry.get("level") == "ERROR"]
    assert "Unhandled error" not in console.getvalue()


def test_a_malformed_chunk_is_uvicorns_400_and_never_logged_as_a_500(
    served: tuple[int, Lines, io.StringIO], auth: Any
) -> None:
    port, lines, _console = served
    token = auth("alice")["Authorization"].split()[1]
    answer = _raw(
        port, _post_head(token, "Transfer-Encoding: chunked\r\n") + b"zz\r\nnot a chunk\r\n", close=False
    )
    assert answer.startswith(b"HTTP/1.1 400")
    line = _request_line(lines, "POST")
    assert line["status"] != 500
    assert line.get("aborted") is True  # the client got uvicorn's 400, not an answer of the app


def test_a_body_that_stalls_is_answered_408_and_logged_so(
    served: tuple[int, Lines, io.StringIO], auth: Any
) -> None:
    port, lines, _console = served
    token = auth("alice")["Authorization"].split()[1]
    answer = _raw(port, _post_head(token, "Content-Length: 100\r\n") + b'{"name": "La', close=False)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"stopped arriving for 0.5 s" in answer
    assert _request_line(lines, "POST")["status"] == 408


def test_a_refused_handshake_is_logged_as_an_expected_refusal_with_its_reason(
    served: tuple[int, Lines, io.StringIO],
) -> None:
    port, _lines, console = served
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5)
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus):
        connect(f"ws://127.0.0.1:{port}/ws?token=not-a-token", open_timeout=5)
    with pytest.raises(InvalidStatus) as elsewhere:
        connect(f"ws://127.0.0.1:{port}/nope", open_timeout=5)
    assert elsewhere.value.response.status_code == 404
    for _ in range(100):  # uvicorn logs once the app has returned
        if console.getvalue().count("handshake refused") == 3:
            break
        time.sleep(0.05)
    logged = console.getvalue()
    assert "ERROR" not in logged, logged
    assert "INFO:     WebSocket handshake refused: 401 missing token" in logged
    assert "WebSocket handshake refused: 401 invalid or expired token" in logged
    assert "WebSocket handshake refused: 404 no WebSocket route at this path" in logged
    assert "pass ?token=<JWT> or" in logged  # the reason as written, not garbled by the redaction


def test_frames_of_every_size_are_answered_as_docs_realtime_says(
    served: tuple[int, Lines, io.StringIO], auth: Any
) -> None:
    port, _lines, _console = served
    token = auth("alice")["Authorization"].split()[1]
    with connect(f"ws://127.0.0.1:{port}/ws?token={token}", open_timeout=5, max_size=None) as websocket:
        websocket.send(json.dumps({"action": "ping"}))
        assert json.loads(websocket.recv(timeout=5)) == {"type": "pong"}
        websocket.send("x" * 5_000)  # over 4 KB: an error reply, and the connection stays
        assert json.loads(websocket.recv(timeout=5))["type"] == "error"
        websocket.send("x" * (128 * 1024))  # at API Gateway's message limit: still an error reply
        assert json.loads(websocket.recv(timeout=5))["type"] == "error"
        websocket.send("x" * (128 * 1024 + 1))  # beyond it: closed with 1009, as API Gateway does
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
