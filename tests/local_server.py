"""`make run`'s server for tests that use it as an outsider would: on free ports, stopped with Ctrl-C."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from devtools.template import REPO_ROOT

STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server(subprocess.Popen[str]):
    """The server process; its console goes to a file, so a busy server never blocks on a full pipe."""

    log: Path

    def output(self, timeout: float = 30) -> str:
        """Everything it printed, once it has exited."""
        self.wait(timeout=timeout)
        return self.log.read_text(encoding="utf-8", errors="replace")


def run_module(*args: str, env: dict[str, str], log: Path) -> Server:
    with log.open("w", encoding="utf-8") as console:
        process = Server(
            [sys.executable, "-m", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=console,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a terminal gives `make run`
        )
    process.log = log
    return process


@pytest.fixture
def dev_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TABLE_", "AUTH_", "LOCAL_JWT"))}
    env["PYTHONPATH"] = "functions/api:functions/upgrade:layers/shared"  # as the Makefile's DEV_PATH
    return env


def _start(dev_env: dict[str, str], log: Path) -> tuple[Server, str, int]:
    """`make run` on free ports, serving /health; AddressInUse when another process took a port first."""
    port, dynamodb_port = free_port(), free_port()
    process = run_module(
        "devtools.run",
        "--port",
        str(port),
        "--dynamodb-port",
        str(dynamodb_port),
        "--in-memory",  # never the developer's own data in .local/
        env=dev_env,
        log=log,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            output = process.log.read_text(encoding="utf-8")
            if "Address already in use" in output:  # a free port is free until someone binds it
                raise AddressInUse(output)
            raise AssertionError(output)
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process, base, dynamodb_port
        except httpx.TransportError:
            pass
        if time.monotonic() >= deadline:
            _stop(process)
            raise AssertionError("make run did not serve /health in time")
        time.sleep(0.2)


class AddressInUse(Exception):
    """The server lost one of its free ports to another process before binding it."""


def _stop(process: Server) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def server(dev_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Server, str, int]]:
    """The same command `make run` runs (autoreload included), on free ports."""
    for attempt in range(3):
        try:
            process, base, dynamodb_port = _start(dev_env, tmp_path / f"make-run-{attempt}.log")
            break
        except AddressInUse:
            if attempt == 2:
                raise
    try:
        yield process, base, dynamodb_port
    finally:
        _stop(process)
