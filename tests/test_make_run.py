"""`make run`'s startup path: it starts, serves /health and CRUD with a dev token, and Ctrl-C stops it."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from devtools.template import REPO_ROOT
from tests.local_server import STARTUP_SECONDS, Server, free_port, run_module

pytestmark = pytest.mark.slow


def dev_token(owner: str, env: dict[str, str]) -> str:
    """What `make token OWNER=owner` prints."""
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "devtools.dev_token", owner],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_make_token_names_the_owner_not_the_login(dev_env: dict[str, str]) -> None:
    import jwt

    def token(*args: str) -> dict[str, object]:
        printed = subprocess.run(  # noqa: S603
            ["make", "-s", "token", *args],  # noqa: S607 - make from PATH, as a developer runs it
            cwd=REPO_ROOT,
            # As typed in a shell: not inside this suite's own make (whose variables and
            # "Entering directory" lines a sub-make would inherit).
            env={
                **{
                    k: v
                    for k, v in dev_env.items()
                    if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}
                },
                "USER": "carol",
                "LOGNAME": "carol",
            },
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        claims: dict[str, object] = jwt.decode(printed, options={"verify_signature": False})
        return claims

    assert token()["sub"] == "alice"
    assert (token()["token_use"], token()["scope"]) == (
        "access",
        "items-api/items",
    )  # what the routes require
    assert token("OWNER=bob")["sub"] == "bob"
    # Verbatim: no shell ever sees the owner (`$t`, `$(…)`, quotes, a leading dash).
    for owner in ("vic$t", "x$(id -un)y", 'a"b', "-vic", "o'neil"):
        assert token(f"OWNER={owner}")["sub"] == owner


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_serves_and_stops(server: tuple[Server, str, int], dev_env: dict[str, str]) -> None:
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
    output = process.output()
    assert process.returncode == 0, output
    # The API stops before its database: no follower failing on a database already gone.
    assert "Traceback" not in output
    assert "stream follower failed" not in output
    assert f"http://127.0.0.1:{base.rsplit(':', 1)[1]}/docs" in output
    assert "make token" in output
    assert f"ws://127.0.0.1:{base.rsplit(':', 1)[1]}/ws?token=" in output
    assert not port_is_open(dynamodb_port)
    assert not port_is_open(int(base.rsplit(":", 1)[1]))


def test_smoke_test_passes_against_make_run(server: tuple[Server, str, int], dev_env: dict[str, str]) -> None:
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
    # And it fails in one line when the token is refused: no check could pass.
    assert broken.returncode == 1
    assert broken.stderr.count("FAILED") == 1, broken.stderr
    assert "FAILED the token is refused with 401" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_make_run_pushes_changes_over_ws_to_their_owner(
    server: tuple[Server, str, int], dev_env: dict[str, str]
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

    carol = dev_token("carol", dev_env)  # the key percent-encoded: still `token` to the server
    with connect(f"{ws_base}/ws?%74oken={carol}", open_timeout=10) as carol_socket:
        carol_socket.send(json.dumps({"action": "ping"}))
        assert json.loads(carol_socket.recv(timeout=5)) == {"type": "pong"}

    with (
        connect(f"{ws_base}/ws?token={alice}", open_timeout=10) as alice_socket,
        connect(f"{ws_base}/ws", additional_headers={"Authorization": f"Bearer {bob}"}) as bob_socket,
    ):
        headers = {"Authorization": f"Bearer {alice}"}
        created = httpx.post(f"{base}/items", json={"name": "Live", "price": 5}, headers=headers).json()
        httpx.patch(f"{base}/items/{created['id']}", json={"price": 6}, headers=headers)
        # The server follows DynamoDB Local's stream every 0.2 s: "within about a second".
        first, second = (json.loads(alice_socket.recv(timeout=5)) for _ in range(2))
        assert (first["type"], first["item"]) == ("item.created", created)
        assert (second["type"], second["version"], second["item"]["price"]) == ("item.updated", 2, 6)
        bob_socket.send(json.dumps({"action": "ping"}))
        assert json.loads(bob_socket.recv(timeout=5)) == {"type": "pong"}  # and nothing of alice's

    # The console: the app's lines and uvicorn's, never a token.
    process = server[0]
    os.killpg(process.pid, signal.SIGINT)
    output = process.output()
    assert alice not in output
    assert bob not in output
    assert carol not in output
    assert "/ws?token=<redacted>" in output
    assert "/ws?%74oken=<redacted>" in output


def run_server(dev_env: dict[str, str], log: Path, *args: str) -> tuple[Server, str]:
    """`make run` on free ports with these extra arguments, once it serves /health."""
    port = free_port()
    process = run_module("devtools.run", "--no-reload", "--port", str(port), *args, env=dev_env, log=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    while not _serves(base):
        assert process.poll() is None, process.log.read_text(encoding="utf-8")
        assert time.monotonic() < deadline, "make run did not serve /health in time"
        time.sleep(0.2)
    return process, base


def _serves(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def stop(process: Server) -> str:
    os.killpg(process.pid, signal.SIGINT)
    output = process.output()
    assert process.returncode == 0, output
    return output


def test_make_run_keeps_its_data_across_restarts_and_fresh_starts_empty(
    dev_env: dict[str, str], tmp_path: Path
) -> None:
    data = tmp_path / "dynamodb"
    headers = {"Authorization": f"Bearer {dev_token('alice', dev_env)}"}
    process, base = run_server(dev_env, tmp_path / "first.log", "--data-dir", str(data))
    created = httpx.post(f"{base}/items", json={"name": "Kept", "price": 1}, headers=headers)
    assert created.status_code == 201, created.text
    assert "created from template.yaml" in stop(process)

    process, base = run_server(dev_env, tmp_path / "second.log", "--data-dir", str(data))
    assert httpx.get(f"{base}/items/{created.json()['id']}", headers=headers).json() == created.json()
    assert "created from template.yaml" not in stop(process)  # the tables were already there

    process, base = run_server(dev_env, tmp_path / "fresh.log", "--data-dir", str(data), "--fresh")
    assert httpx.get(f"{base}/items", headers=headers).json() == {"items": [], "next_cursor": None}
    assert "Deleted the local data" in stop(process)


@pytest.mark.parametrize("dynamodb_only", [False, True], ids=["make run", "make dynamodb"])
def test_a_taken_dynamodb_port_stops_the_server_naming_it(
    dev_env: dict[str, str], tmp_path: Path, dynamodb_only: bool
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        mode = ["--dynamodb-only"] if dynamodb_only else ["--port", str(free_port())]
        process = run_module(
            "devtools.run",
            "--no-reload",
            *mode,
            "--dynamodb-port",
            str(port),
            "--in-memory",
            env=dev_env,
            log=tmp_path / "taken.log",
        )
        output = process.output(timeout=60)  # exits on its own, within seconds
    assert process.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in output
    assert ("DYNAMODB_PORT=" in output) is dynamodb_only  # the variable make dynamodb reads
    assert "Traceback" not in output


def test_make_dynamodb_serves_the_tables_sam_local_is_pointed_at(tmp_path: Path, environment: None) -> None:
    import json
    import os

    import boto3

    from devtools.local_env import LOCAL_TABLE_NAME
    from devtools.run import start_dynamodb, write_sam_env

    environment = dict(os.environ)
    server, changes = start_dynamodb(0, tmp_path / "data")
    try:
        assert dict(os.environ) == environment  # the caller's process is left as it was
        assert changes == [
            "items-local: created from template.yaml",
            "items-local-idempotency: created from template.yaml",
        ]
        write_sam_env("127.0.0.1", server.port, tmp_path)
        variables = json.loads((tmp_path / "sam-env.json").read_text())["ApiFunction"]
        assert variables["DYNAMODB_ENDPOINT_URL"] == server.endpoint
        assert variables["TABLE_NAME"] == LOCAL_TABLE_NAME
        # SAM CLI fills only variables the template declares: each one here is the function's,
        # with this checkout's dev-token key for `sam local start-api` (app/sam_local.py).
        from devtools.local_env import local_jwt_secret
        from devtools.template import load_template

        declared = load_template()["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
        assert set(variables) <= set(declared)
        assert variables["LOCAL_JWT_SECRET"] == local_jwt_secret()
        assert variables["CURSOR_SECRET_ARN"] == ""  # the stack's secret does not exist locally
        assert (tmp_path / "sam-env.json").stat().st_mode & 0o777 == 0o600  # it holds keys
        assert len(variables["CURSOR_SIGNING_KEY"]) >= 32
        client = boto3.client("dynamodb", endpoint_url=variables["DYNAMODB_ENDPOINT_URL"])
        assert client.describe_table(TableName=LOCAL_TABLE_NAME)["Table"]["TableStatus"] == "ACTIVE"
        event = json.loads((tmp_path / "events" / "create-item.json").read_text())
        assert event["requestContext"]["authorizer"]["jwt"]["claims"] == {"sub": "alice"}
    finally:
        server.stop()


def test_a_taken_api_port_stops_make_run_before_anything_starts(
    dev_env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = run_module(
            "devtools.run",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
            env=dev_env,
            log=tmp_path / "taken.log",
        )
        output = process.output(timeout=30)
    assert process.returncode == 1
    assert f"make run: port {port} on 127.0.0.1 is already in use" in output
    assert "PORT=" in output
    assert "DynamoDB Local on" not in output  # nothing was started


def test_one_data_folder_serves_one_make_run_at_a_time(dev_env: dict[str, str], tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    first, _ = run_server(dev_env, tmp_path / "first.log", "--data-dir", data)
    try:
        second = run_module(
            "devtools.run",
            "--port",
            str(free_port()),
            "--data-dir",
            data,
            env=dev_env,
            log=tmp_path / "second.log",
        )
        output = second.output(timeout=30)
        assert second.returncode == 1
        assert f"make run: {data} is in use by another make run or make dynamodb" in output
    finally:
        stop(first)


def test_dynamodb_local_keeps_data_in_a_relative_folder(tmp_path: Path) -> None:
    import os

    import boto3

    from devtools import dynamodb_local
    from devtools.template import create_table

    relative = Path(os.path.relpath(tmp_path / "data"))  # as `make dynamodb` passes .local/dynamodb-sam
    with dynamodb_local.running(data_dir=relative) as server:
        client = boto3.client(
            "dynamodb",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        create_table(client, "kept")
    assert [path.suffix for path in (tmp_path / "data").iterdir()] == [".db"]


def test_make_run_brings_local_data_of_an_earlier_layout_in_line(tmp_path: Path, environment: None) -> None:
    import boto3

    from devtools.local_env import LOCAL_TABLE_NAME
    from devtools.run import start_dynamodb
    from items_core.layout import LAYOUT_KEY

    server, _ = start_dynamodb(0, tmp_path / "data")
    try:  # what a checkout of the release before tag copies left in .local/
        client = boto3.client("dynamodb", endpoint_url=server.endpoint)
        client.delete_item(TableName=LOCAL_TABLE_NAME, Key=LAYOUT_KEY)
        row = {
            "pk": {"S": "OWNER#alice"},
            "sk": {"N": "1"},
            "name": {"S": "Old"},
            "name_folded": {"S": "old"},
            "price": {"N": "1"},
            "quantity": {"N": "0"},
            "tags": {"L": [{"S": "red"}]},
            "version": {"N": "1"},
            "created_at": {"S": "2026-11-30T00:00:00Z"},
            "updated_at": {"S": "2026-11-30T00:00:00Z"},
        }
        client.put_item(TableName=LOCAL_TABLE_NAME, Item=row)
    finally:
        server.stop()
    server, changes = start_dynamodb(0, tmp_path / "data")
    try:
        assert changes == [f"{LOCAL_TABLE_NAME}: brought to the current layout by the upgrade backfill"]
        client = boto3.client("dynamodb", endpoint_url=server.endpoint)
        copy = client.get_item(
            TableName=LOCAL_TABLE_NAME, Key={"pk": {"S": "TAG#5#alice#red"}, "sk": {"N": "1"}}
        )
        assert copy["Item"]["name"] == {"S": "Old"}
    finally:
        server.stop()


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}
    }
    return subprocess.run(  # noqa: S603
        ["make", *args],  # noqa: S607 - make from PATH, as a developer runs it
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_make_deploy_runs_the_gate_then_builds_then_deploys_the_named_environment() -> None:
    for environment, config_env in (("dev", "default"), ("staging", "staging"), ("prod", "prod")):
        planned = _make("-n", "deploy", f"ENV={environment}")
        assert planned.returncode == 0, planned.stderr
        steps = planned.stdout
        gate, build = steps.index("make preflight"), steps.index("make build")
        deploy = steps.index(f"sam deploy --config-env {config_env}")
        assert gate < build < deploy
    assert "--guided" in _make("-n", "deploy", "ENV=dev", "GUIDED=1").stdout
    role = "arn:aws:iam::123456789012:role/items-api-cloudformation"
    assert f'--role-arn "{role}"' in _make("-n", "deploy", "ENV=prod", f"ROLE_ARN={role}").stdout
    for wrong in ((), ("ENV=qa",)):
        refused = _make("deploy", *wrong)
        assert refused.returncode != 0
        assert "usage: make deploy ENV=dev|staging|prod" in refused.stdout + refused.stderr


def test_make_sam_puts_sam_cli_where_the_readme_says() -> None:
    made = _make("sam")
    assert made.returncode == 0, made.stderr
    assert "SAM CLI, version" in made.stdout
    assert 'export PATH="$PWD/.local/bin:$PATH"' in made.stdout
    version = subprocess.run(  # noqa: S603
        [str(REPO_ROOT / ".local" / "bin" / "sam"), "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("SAM CLI, version")


def test_python_is_honoured_the_venv_is_rebuilt_with_it() -> None:
    """PYTHON=python3.13 rebuilds .venv with that interpreter (its version is in the stamp)."""
    import shutil

    current = _make("-n", "install")
    assert "-m venv" not in current.stdout  # .venv is up to date with python3
    other = shutil.which("python3.13") or shutil.which("python3.12")
    if other is None:  # pyenv's interpreters, as the Makefile finds them
        candidates = sorted(Path.home().glob(".pyenv/versions/3.1[23]*/bin/python3.1[23]"))
        assert candidates, "no second interpreter (python3.12 or 3.13) on this machine"
        other = str(candidates[-1])
    planned = _make("-n", "install", f"PYTHON={other}")
    assert "-m venv --clear .venv" in planned.stdout, planned.stdout
    assert "touch .venv/.installed-py3.1" in planned.stdout
    missing = _make("install", "PYTHON=python3.99-nowhere")
    assert missing.returncode != 0
    assert "PYTHON=python3.99-nowhere is not a Python interpreter on this machine" in missing.stderr
    # A name pyenv has but does not make active is found there, as make build finds python3.13.
    pyenv = sorted(Path.home().glob(".pyenv/versions/3.1[23]*/bin/python3.1[23]"))
    if pyenv:
        named = _make("-n", "install", f"PYTHON={pyenv[-1].name}")
        assert "-m venv --clear .venv" in named.stdout, named.stdout + named.stderr
    # Versions the project does not run on are refused before .venv is touched.
    old = sorted(Path.home().glob(".pyenv/versions/3.10*/bin/python3.10"))
    if old:
        refused = _make("install", f"PYTHON={old[-1]}")
        assert refused.returncode != 0
        assert "this project runs on 3.11 to 3.13" in refused.stderr
        assert _make("-n", "install").stdout.count("-m venv") == 0  # .venv untouched


def test_make_help_can_be_copied_and_switches_take_only_yes() -> None:
    assert 'export PATH="$PWD/.local/bin:$PATH"' in _make("help").stdout
    assert "--fresh" not in _make("-n", "run", "FRESH=0").stdout
    assert "--fresh" in _make("-n", "run", "FRESH=1").stdout
    assert "--guided" not in _make("-n", "deploy", "ENV=dev", "GUIDED=0").stdout
