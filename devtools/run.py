"""`make run`: AWS's DynamoDB Local and the API with autoreload, both on 127.0.0.1."""

import argparse
import fcntl
import json
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import IO, Any

import boto3
import uvicorn

from devtools import dynamodb_local
from devtools.local_env import (
    LOCAL_DIR,
    LOCAL_IDEMPOTENCY_TABLE_NAME,
    LOCAL_TABLE_NAME,
    apply,
    ensure_dir,
    local_environment,
)
from devtools.logs import uvicorn_log_config
from devtools.template import REPO_ROOT, TableMismatch, function_entry, load_template, sync_table

HOST = "127.0.0.1"
DATA_DIR = LOCAL_DIR / "dynamodb"


def start_dynamodb(port: int, data_dir: Path | None) -> tuple[dynamodb_local.DynamoDBLocal, list[str]]:
    """Start DynamoDB Local and create or update the tables from template.yaml; what changed, in words."""
    server = dynamodb_local.start(port=port, data_dir=data_dir)
    environment = local_environment(server.endpoint)
    client = boto3.session.Session(
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=environment["AWS_SESSION_TOKEN"],
        region_name=environment["AWS_REGION"],
    ).client("dynamodb", endpoint_url=server.endpoint)
    try:
        changes = sync_table(client, LOCAL_TABLE_NAME) + sync_table(
            client, LOCAL_IDEMPOTENCY_TABLE_NAME, logical_id="IdempotencyTable"
        )
        changes += bring_in_line(client, LOCAL_TABLE_NAME)
    except BaseException:
        server.stop()
        raise
    return server, changes


def bring_in_line(client: Any, table: str) -> list[str]:
    """Run the upgrade backfill to its end, as the deployed schedule would (local tables are small)."""
    from items_core.layout import LAYOUT_KEY, layout_from_row

    if layout_from_row(client.get_item(TableName=table, Key=LAYOUT_KEY).get("Item")).counts_complete:
        return []
    from upgrade.backfill import GRACE_SECONDS, Backfill, reset

    reset(client, table, time.time() - GRACE_SECONDS)  # nothing else writes to it now
    backfill = Backfill(client, table, units_per_second=10_000)
    while (progress := backfill.run(60)).state != "complete":
        if progress.state != "backfilling":
            raise LocalRunError(f"the backfill of {table} could not run ({progress.state})")
    return [f"{table}: brought to the current layout by the upgrade backfill"]


def write_sam_env(endpoint_host: str, endpoint_port: int, directory: Path = LOCAL_DIR) -> None:
    """The env-vars file and two events for `sam local`, pointing its container at this DynamoDB."""
    # SAM CLI sets only the variables the template declares for the function (the rest of this
    # file would be ignored): the tables, DynamoDB Local, this checkout's cursor key instead of
    # the stack's secret, and the dev-token key the function checks `make token`'s tokens with
    # under `sam local start-api` (app/sam_local.py).
    from devtools.template import load_template

    declared = load_template()["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    local = local_environment(f"http://{endpoint_host}:{endpoint_port}") | {"CURSOR_SECRET_ARN": ""}
    environment = {name: value for name, value in local.items() if name in declared}
    ensure_dir(directory)
    env_file = directory / "sam-env.json"
    env_file.touch(mode=0o600)
    env_file.chmod(0o600)  # it holds this checkout's dev-token and cursor keys
    env_file.write_text(json.dumps({"ApiFunction": environment}, indent=2), encoding="utf-8")
    events = ensure_dir(directory / "events")
    for name, method, body in (
        ("create-item", "POST", {"name": "Widget", "price": 9.99}),
        ("list-items", "GET", None),
    ):
        (events / f"{name}.json").write_text(
            json.dumps(sam_local_event(method, "/items", body), indent=2), encoding="utf-8"
        )


def sam_local_event(method: str, path: str, body: Any, owner: str = "alice") -> dict[str, Any]:
    """An HTTP API (payload v2) event as API Gateway sends it after its JWT authorizer verified `owner`."""
    template = json.loads((REPO_ROOT / "tests" / "events" / "http-api-v2.json").read_text(encoding="utf-8"))
    template.pop("cookies", None)
    template.update(
        rawPath=path,
        rawQueryString="",
        queryStringParameters=None,
        headers={"content-type": "application/json"},
        body=None if body is None else json.dumps(body),
        isBase64Encoded=False,
    )
    context = template["requestContext"]
    context["http"].update(method=method, path=path)
    context["authorizer"] = {"jwt": {"claims": {"sub": owner}, "scopes": None}}
    return dict(template)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    parser.add_argument("--dynamodb-port", type=int, default=0, help="DynamoDB port (default: any free one)")
    parser.add_argument("--no-reload", action="store_true", help="do not restart on code changes")
    parser.add_argument("--dynamodb-only", action="store_true", help="serve only DynamoDB, for sam local")
    data = parser.add_mutually_exclusive_group()
    data.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        help="where DynamoDB keeps its data (default .local/dynamodb)",
    )
    data.add_argument("--in-memory", action="store_true", help="keep no data: every start begins empty")
    parser.add_argument("--fresh", action="store_true", help="delete the kept data first: start empty")
    parser.add_argument(
        "--sam-endpoint-host",
        default="host.docker.internal",
        help="host name the sam local container uses for this machine (127.0.0.1 with --docker-network host)",
    )
    return parser.parse_args(argv)


# What `make run`'s server adds to uvicorn's defaults, to answer as the deployed API does: a
# WebSocket message over API Gateway's 128 KB closes the connection with 1009, as there.
LOCAL_SERVER_OPTIONS: dict[str, Any] = {"ws_max_size": 128 * 1024}


class LocalRunError(Exception):
    """What stops `make run` or `make dynamodb` before it serves anything, in words."""


def _check_port_free(port: int, variable: str) -> None:
    with socket.socket() as probe:
        # As uvicorn binds: a port whose last connections linger in TIME-WAIT is free to serve.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as error:
            raise LocalRunError(
                f"port {port} on {HOST} is already in use (another make run?); choose another: {variable}=…"
            ) from error


def _hold(data_dir: Path, *, fresh: bool) -> IO[str]:
    """Lock the data folder for this process, emptied first with `fresh`; the open lock file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = (data_dir / ".lock").open("w")
    try:  # two DynamoDB Locals on one folder would corrupt it
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        lock.close()
        raise LocalRunError(f"{data_dir} is in use by another make run or make dynamodb") from error
    if fresh:
        for entry in data_dir.iterdir():
            if entry.name != ".lock":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        print(f"Deleted the local data in {data_dir}", flush=True)
    return lock


def _serve_dynamodb_only(args: argparse.Namespace, server: dynamodb_local.DynamoDBLocal) -> None:
    write_sam_env(args.sam_endpoint_host, server.port)
    tables = f"{LOCAL_TABLE_NAME}, {LOCAL_IDEMPOTENCY_TABLE_NAME}"
    print(f"Tables {tables}; env-vars file .local/sam-env.json", flush=True)
    print("Ctrl-C stops it.", flush=True)
    try:
        while server.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass


def _serve_api(args: argparse.Namespace) -> None:
    print(f"API docs: http://{HOST}:{args.port}/docs", flush=True)
    print("Token:    make token OWNER=alice   then  Authorization: Bearer <token>", flush=True)
    print(f"Live:     ws://{HOST}:{args.port}/ws?token=<token>   (item changes)", flush=True)
    task_root, _handler = function_entry(load_template())
    uvicorn.run(
        "devtools.local_app:create_local_app",
        factory=True,
        host=HOST,
        port=args.port,
        app_dir=str(REPO_ROOT),
        reload=not args.no_reload,
        reload_dirs=[str(task_root), str(REPO_ROOT / "layers" / "shared"), str(REPO_ROOT / "devtools")],
        log_level="info",
        log_config=uvicorn_log_config(),
        **LOCAL_SERVER_OPTIONS,
    )


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C while starting: nothing half-started is left (finally blocks)
        print("stopped", file=sys.stderr, flush=True)
        return 130


def _main(argv: list[str] | None) -> int:
    args = _arguments(argv)
    name = "make dynamodb" if args.dynamodb_only else "make run"
    data_dir = None if args.in_memory else args.data_dir
    lock = None
    try:
        if not args.dynamodb_only:
            _check_port_free(args.port, "PORT")
        lock = _hold(data_dir, fresh=args.fresh) if data_dir is not None else None
        server, changes = start_dynamodb(args.dynamodb_port, data_dir)
        apply(local_environment(server.endpoint))  # for the API, its reloads and /ws
    except dynamodb_local.PortInUse as error:
        variable = "DYNAMODB_PORT" if args.dynamodb_only else "--dynamodb-port"
        print(f"{name}: {error}; choose another: {variable}=…", file=sys.stderr, flush=True)
        return 1
    except (LocalRunError, dynamodb_local.DynamoDBLocalError, TableMismatch) as error:
        print(f"{name}: {error}", file=sys.stderr, flush=True)
        return 1
    try:
        kept = "in memory (empty at each start)" if data_dir is None else f"data in {data_dir}"
        print(f"DynamoDB Local on {server.endpoint}, {kept}", flush=True)
        for change in changes:
            print(f"  {change}", flush=True)
        if args.dynamodb_only:
            _serve_dynamodb_only(args, server)
        else:
            _serve_api(args)
        return 0
    finally:
        server.stop()
        if lock is not None:
            lock.close()


if __name__ == "__main__":
    sys.exit(main())
