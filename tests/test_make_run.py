"""`make run`'s startup path: it starts, serves /health and CRUD with a dev token, and Ctrl-C stops it."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from devtools.template import REPO_ROOT

STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_module(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - fixed argv, our own modules
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives `make run`
    )


@pytest.fixture
def dev_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TABLE_", "AUTH_", "LOCAL_JWT"))}
    env["PYTHONPATH"] = "functions/api:layers/shared"
    return env


@pytest.fixture
def server(dev_env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str, int]]:
    """The same command `make run` runs (autoreload included), on free ports."""
    port, dynamodb_port = free_port(), free_port()
    process = run_module(
        "devtools.run", "--port", str(port), "--dynamodb-port", str(dynamodb_port), env=dev_env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "make run did not serve /health in time"
            time.sleep(0.2)
        yield process, base, dynamodb_port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        process.communicate()  # reap it and close its pipe


def dev_token(owner: str, env: dict[str, str]) -> str:
    """What `make token USER=owner` prints."""
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "devtools.dev_token", owner],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_serves_and_stops(
    server: tuple[subprocess.Popen[str], str, int], dev_env: dict[str, str]
) -> None:
    process, base, dynamodb_port = server
    assert httpx.get(f"{base}/health").json() == {"status": "ok"}
    assert httpx.get(f"{base}/docs").status_code == 200
    assert httpx.get(f"{base}/items").status_code == 401

    token = dev_token("alice", dev_env)
    headers = {"Authorization": f"Bearer {token}"}
    created = httpx.post(f"{base}/items", json={"name": "Widget", "price": 9.99}, headers=headers)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/items/{created.json()['id']}"
    listing = httpx.get(f"{base}/items", headers=headers).json()
    assert [item["name"] for item in listing["items"]] == ["Widget"]
    assert port_is_open(dynamodb_port)

    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: SIGINT to the whole foreground group
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert f"http://127.0.0.1:{base.rsplit(':', 1)[1]}/docs" in output
    assert "make token" in output
    assert f"ws://127.0.0.1:{base.rsplit(':', 1)[1]}/ws?token=" in output
    assert not port_is_open(dynamodb_port)
    assert not port_is_open(int(base.rsplit(":", 1)[1]))


def test_smoke_test_passes_against_make_run(
    server: tuple[subprocess.Popen[str], str, int], dev_env: dict[str, str]
) -> None:
    """The deploy pipeline's smoke step, run here against the local server."""
    _, base, _ = server
    token = dev_token("smoke", dev_env)
    ws_url = base.replace("http://", "ws://") + "/ws"
    smoke = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "devtools.smoke", "--base-url", base, "--token", token, "--ws-url", ws_url],
        check=False,
        cwd=REPO_ROOT,
        env=dev_env,
        capture_output=True,
        text=True,
    )
    assert smoke.returncode == 0, smoke.stderr
    assert "smoke: ok" in smoke.stdout
    # And it fails when the deployment is wrong: a bad token makes every authenticated check fail.
    broken = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "devtools.smoke",
            "--base-url",
            base,
            "--token",
            "not-a-token",
            "--ws-url",
            ws_url,
        ],
        check=False,
        cwd=REPO_ROOT,
        env=dev_env,
        capture_output=True,
        text=True,
    )
    assert broken.returncode == 1
    assert "FAILED POST /items is 201" in broken.stderr
    assert "FAILED WebSocket connects (InvalidStatus" in broken.stderr


def test_make_run_pushes_changes_over_ws_to_their_owner(
    server: tuple[subprocess.Popen[str], str, int], dev_env: dict[str, str]
) -> None:
    import json

    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    _, base, _ = server
    ws_base = base.replace("http://", "ws://")
    alice, bob = dev_token("alice", dev_env), dev_token("bob", dev_env)
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{ws_base}/ws?token=not-a-token", open_timeout=10)
    assert refused.value.response.status_code == 401

    with (
        connect(f"{ws_base}/ws?token={alice}", open_timeout=10) as alice_socket,
        connect(f"{ws_base}/ws", additional_headers={"Authorization": f"Bearer {bob}"}) as bob_socket,
    ):
        headers = {"Authorization": f"Bearer {alice}"}
        created = httpx.post(f"{base}/items", json={"name": "Live", "price": 5}, headers=headers).json()
        httpx.patch(f"{base}/items/{created['id']}", json={"price": 6}, headers=headers)
        # The server follows moto's stream every 0.2 s: "within about a second".
        first, second = (json.loads(alice_socket.recv(timeout=5)) for _ in range(2))
        assert (first["type"], first["item"]) == ("item.created", created)
        assert (second["type"], second["version"], second["item"]["price"]) == ("item.updated", 2, 6)
        bob_socket.send(json.dumps({"action": "ping"}))
        assert json.loads(bob_socket.recv(timeout=5)) == {"type": "pong"}  # and nothing of alice's
