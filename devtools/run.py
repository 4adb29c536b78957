"""`make run`: an embedded DynamoDB (moto's server) and the API with autoreload, on 127.0.0.1.

Ctrl-C stops both. `--dynamodb-only` serves just the DynamoDB endpoint (for
`sam local start-api`, see the README).
"""

import argparse
import json
import sys
import time
from typing import Any

import boto3
import uvicorn
from moto.server import ThreadedMotoServer

from devtools import moto_transactions
from devtools.local_env import (
    LOCAL_DIR,
    LOCAL_IDEMPOTENCY_TABLE_NAME,
    LOCAL_TABLE_NAME,
    apply,
    ensure_dir,
    local_environment,
)
from devtools.logs import quiet_embedded_dynamodb, uvicorn_log_config
from devtools.template import REPO_ROOT, create_table, function_entry, load_template

HOST = "127.0.0.1"


def start_dynamodb(port: int) -> tuple[ThreadedMotoServer, str]:
    """Start moto's server and create the tables from template.yaml."""
    quiet_embedded_dynamodb()
    moto_transactions.install()  # transactions cost what they touch, not a copy of the table
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    host, bound_port = server.get_host_and_port()
    endpoint = f"http://{host}:{bound_port}"
    apply(local_environment(endpoint))
    client = boto3.session.Session().client("dynamodb", endpoint_url=endpoint)
    create_table(client, LOCAL_TABLE_NAME)
    create_table(client, LOCAL_IDEMPOTENCY_TABLE_NAME, logical_id="IdempotencyTable")
    return server, endpoint


def write_sam_env(endpoint_host: str, endpoint_port: int) -> None:
    """The env-vars file for `sam local`, pointing the function's container at this DynamoDB."""
    # The deployed function has no local token check and no /ws: only make run uses those.
    environment = {
        name: value
        for name, value in local_environment(f"http://{endpoint_host}:{endpoint_port}").items()
        if not name.startswith("LOCAL_")
    }
    ensure_dir(LOCAL_DIR)
    (LOCAL_DIR / "sam-env.json").write_text(
        json.dumps({"ApiFunction": environment}, indent=2), encoding="utf-8"
    )
    events = ensure_dir(LOCAL_DIR / "events")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    parser.add_argument("--dynamodb-port", type=int, default=0, help="DynamoDB port (default: any free one)")
    parser.add_argument("--no-reload", action="store_true", help="do not restart on code changes")
    parser.add_argument("--dynamodb-only", action="store_true", help="serve only DynamoDB, for sam local")
    parser.add_argument(
        "--sam-endpoint-host",
        default="host.docker.internal",
        help="host name the sam local container uses for this machine (127.0.0.1 with --docker-network host)",
    )
    args = parser.parse_args(argv)

    server, endpoint = start_dynamodb(args.dynamodb_port)
    try:
        if args.dynamodb_only:
            write_sam_env(args.sam_endpoint_host, int(endpoint.rsplit(":", 1)[1]))
            print(
                f"DynamoDB on {endpoint}, table {LOCAL_TABLE_NAME}; env-vars file .local/sam-env.json",
                flush=True,
            )
            print("Ctrl-C stops it.", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
            return 0
        print(f"DynamoDB (embedded) on {endpoint}, table {LOCAL_TABLE_NAME}", flush=True)
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
        )
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
