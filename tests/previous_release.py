"""A previous release of the API, run from git history against the tests' DynamoDB Local.

Compatibility tests drive the code of an earlier commit and the current code
against the same tables in one test: rows the old code wrote must read back
through the new code, and the other way round. `PreviousRelease` runs that
commit's Lambda handler in a child process (tests/previous_release_driver.py),
so its ``app`` and ``items_core`` never meet the current ones in one interpreter:

    with PreviousRelease("e21d48b", endpoint_url=server.endpoint, table_name=TABLE_NAME) as old:
        created = old.request("POST", "/items", owner="alice", json={"name": "Widget", "price": 1})

Each request reaches the old handler as API Gateway's HTTP API delivers it, with
the owner as the claim its JWT authorizer verified: the code path a deployed
release served.
"""

import base64
import collections
import contextlib
import io
import os
import queue
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from json import dumps, loads
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self
from urllib.parse import urlencode

REPO_ROOT = Path(__file__).resolve().parent.parent
DRIVER = Path(__file__).resolve().parent / "previous_release_driver.py"

PREVIOUS_RELEASES = {
    "e21d48b": "layout before tag copies (the items table holds idempotency records)",
    "fd07dfb": "layout 2: tag copies, no per-owner count of stored items",
}
"""Commits whose data layout the current code must still read; a layout change adds its predecessor."""

SOURCE_ROOTS = ("functions/api", "layers/shared")
"""A release's import roots (Lambda's task root, the shared layer's python/), materialised per commit."""

CACHE = REPO_ROOT / ".local" / "releases"
"""Where releases are materialised, one folder per full commit id (.local/ is git-ignored)."""

TIMEOUT_SECONDS = 60.0


class PreviousReleaseError(RuntimeError):
    """The release could not be materialised or started, or its handler failed (with the child's output)."""


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    git = shutil.which("git")
    if git is None:
        raise PreviousReleaseError("the compatibility tests need git on PATH to read a previous release")
    return subprocess.run([git, "-C", str(REPO_ROOT), *args], capture_output=True, check=False)  # noqa: S603


def materialise(commit: str) -> Path:
    """The folder holding `commit`'s SOURCE_ROOTS, extracted from git once and kept in CACHE."""
    if _git("cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        raise PreviousReleaseError(
            f"commit {commit} is not in this clone: the compatibility tests need the repository's "
            "history; in a shallow clone run `git fetch --unshallow`"
        )
    full = _git("rev-parse", "--verify", f"{commit}^{{commit}}").stdout.decode().strip()
    target = CACHE / full
    if target.is_dir():
        return target
    archive = _git("archive", "--format=tar", full, *SOURCE_ROOTS)
    if archive.returncode != 0:
        raise PreviousReleaseError(f"git archive {full} failed: {archive.stderr.decode(errors='replace')}")
    CACHE.mkdir(parents=True, exist_ok=True)
    # Extracted beside the target and renamed into place: a reader (another xdist worker)
    # sees either nothing or the whole tree.
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=f".{full}.") as staging:
        tree = Path(staging) / "tree"
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tree, filter="data")
        try:
            tree.rename(target)
        except OSError:
            if not target.is_dir():  # not another process's complete copy: a real failure
                raise
    return target


@dataclass(frozen=True)
class Response:
    """An HTTP response of the previous release; `headers` has lower-case names (repeats comma-joined)."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8")

    def json(self) -> Any:
        return loads(self.content)


def _drain(stream: IO[bytes], sink: "queue.Queue[bytes | None] | collections.deque[bytes]") -> None:
    """Copy `stream`'s lines to `sink` until end of file (then None, for a queue)."""
    for line in stream:
        if isinstance(sink, queue.Queue):
            sink.put(line)
        else:
            sink.append(line)
    if isinstance(sink, queue.Queue):
        sink.put(None)


class PreviousRelease:
    """One long-lived child process serving HTTP requests with `commit`'s Lambda handler.

    The child's environment is built here, not inherited: fake credentials, us-east-1,
    no AWS config files, and the settings that release reads (TABLE_NAME,
    DYNAMODB_ENDPOINT_URL, ...; `extra_env` adds or overrides any). Its clients are
    created on first use and cached, as in a warm Lambda container; a table dropped
    and created again under the same name at the same endpoint serves on.
    """

    def __init__(
        self,
        commit: str,
        *,
        endpoint_url: str,
        table_name: str,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.commit = commit
        self.timeout = timeout
        self.root = materialise(commit)
        self.env = self._environment(endpoint_url, table_name, extra_env or {})
        self._stderr: collections.deque[bytes] = collections.deque(maxlen=500)
        self._replies: queue.Queue[bytes | None] = queue.Queue()
        self._process = subprocess.Popen(  # noqa: S603 - this interpreter, the driver next to this file
            # -I: no PYTHON* variables, no script folder or user site on sys.path; the driver
            # puts the release's roots first.
            [sys.executable, "-I", str(DRIVER), *(str(self.root / path) for path in SOURCE_ROOTS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.root,
            env=self.env,
        )
        assert self._process.stdout is not None
        assert self._process.stderr is not None
        self._threads = [
            threading.Thread(target=_drain, args=(self._process.stdout, self._replies), daemon=True),
            threading.Thread(target=_drain, args=(self._process.stderr, self._stderr), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        try:
            ready = self._receive()
            self._check_ready(ready)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _environment(endpoint_url: str, table_name: str, extra: Mapping[str, str]) -> dict[str, str]:
        env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
        env.update(
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_SESSION_TOKEN="test",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_REGION="us-east-1",
            # Nothing in ~/.aws may redirect the child (a profile, an endpoint_url, credentials).
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
            TABLE_NAME=table_name,
            DYNAMODB_ENDPOINT_URL=endpoint_url,
            # As the suite runs the current code: every call checked against botocore's
            # model, and timeouts that a busy DynamoDB Local does not trip.
            AWS_VALIDATE_PARAMS="true",
            DYNAMODB_CONNECT_TIMEOUT="2",
            DYNAMODB_READ_TIMEOUT="5",
        )
        env.update(extra)
        return env

    def _check_ready(self, ready: dict[str, Any]) -> None:
        if ready.get("ready") is not True:
            raise self._error(f"the driver did not start: {ready}")
        for name, file in ready["modules"].items():
            if not Path(file).resolve().is_relative_to(self.root):
                raise self._error(f"{name} was imported from {file}, not from the release at {self.root}")

    def _error(self, message: str) -> PreviousReleaseError:
        stderr = b"".join(self._stderr).decode(errors="replace")
        return PreviousReleaseError(
            f"previous release {self.commit}: {message}\n--- its stderr ---\n{stderr}"
        )

    def _receive(self) -> dict[str, Any]:
        try:
            line = self._replies.get(timeout=self.timeout)
        except queue.Empty:
            raise self._error(f"no answer within {self.timeout} s") from None
        if line is None:
            self._process.wait(timeout=self.timeout)
            for thread in self._threads:  # all of stderr, up to the traceback's last line
                thread.join(timeout=self.timeout)
            raise self._error(f"the driver exited with status {self._process.returncode}")
        reply: dict[str, Any] = loads(line)
        return reply

    def request(
        self,
        method: str,
        path: str,
        *,
        owner: str | None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
    ) -> Response:
        """`method` `path` (may carry a ?query; `params` are appended encoded) as `owner` (None: no claims).

        `json` is sent as a JSON body with Content-Type application/json, `content` as is.
        """
        if self._process.poll() is not None or self._process.stdin is None:
            raise self._error("the driver is not running")
        path, _, query = path.partition("?")
        if params:
            query = "&".join(part for part in (query, urlencode(params)) if part)
        sent = dict(headers or {})
        body: bytes | None = content.encode() if isinstance(content, str) else content
        if json is not None:
            # The bytes httpx (the current app's TestClient) sends for the same `json`, so an
            # Idempotency-Key fingerprint (a hash of the body) matches across the two releases.
            body = dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
            if not any(name.lower() == "content-type" for name in sent):
                sent["content-type"] = "application/json"
        message = {
            "method": method.upper(),
            "path": path,
            "query": query,
            "owner": owner,
            "headers": list(sent.items()),
            "body": None if body is None else base64.b64encode(body).decode(),
        }
        try:
            self._process.stdin.write(dumps(message).encode() + b"\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            raise self._error("the driver closed its input") from None
        reply = self._receive()
        if "error" in reply:
            raise self._error(f"the handler raised:\n{reply['error']}")
        answered: dict[str, str] = {}
        for name, value in reply["headers"]:
            key = name.lower()
            answered[key] = f"{answered[key]}, {value}" if key in answered else value
        return Response(reply["status"], answered, base64.b64decode(reply["body"]))

    def close(self) -> None:
        """End the child (end of input, then a kill if it lingers) and release its pipes."""
        process = self._process
        if process.stdin is not None and not process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):  # a child that already exited
                process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for thread in self._threads:
            thread.join(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    @property
    def stderr(self) -> str:
        """The child's latest output (its request log lines, warnings)."""
        return b"".join(self._stderr).decode(errors="replace")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
