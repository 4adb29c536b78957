"""`make run`: an embedded DynamoDB (moto's server) and the API with autoreload, on 127.0.0.1.

Ctrl-C stops both. `--dynamodb-only` serves just the DynamoDB endpoint (for
`sam local start-api`, see the README).
"""

import argparse
import json
import sys
import time

import boto3
import uvicorn
from moto.server import ThreadedMotoServer

from devtools.local_env import LOCAL_DIR, LOCAL_TABLE_NAME, apply, ensure_dir, local_environment
from devtools.template import create_table, function_entry, load_template

HOST = "127.0.0.1"


def start_dynamodb(port: int) -> tuple[ThreadedMotoServer, str]:
    """Start moto's server and create the table from template.yaml."""
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    host, bound_port = server.get_host_and_port()
    endpoint = f"http://{host}:{bound_port}"
    apply(local_environment(endpoint))
    client = boto3.session.Session().client("dynamodb", endpoint_url=endpoint)
    create_table(client, LOCAL_TABLE_NAME)
    return server, endpoint


def write_sam_env(endpoint_host: str, endpoint_port: int) -> None:
    """The env-vars file for `sam local`, pointing the function's container at this DynamoDB."""
    environment = local_environment(f"http://{endpoint_host}:{endpoint_port}")
    ensure_dir(LOCAL_DIR)
    (LOCAL_DIR / "sam-env.json").write_text(
        json.dumps({"ApiFunction": environment}, indent=2), encoding="utf-8"
    )


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
        task_root, handler = function_entry(load_template())
        module = handler.rsplit(".", 1)[0]
        print(f"DynamoDB (embedded) on {endpoint}, table {LOCAL_TABLE_NAME}", flush=True)
        print(f"API docs: http://{HOST}:{args.port}/docs", flush=True)
        print("Token:    make token USER=alice   then  Authorization: Bearer <token>", flush=True)
        print(f"Live:     ws://{HOST}:{args.port}/ws?token=<token>   (item changes)", flush=True)
        uvicorn.run(
            f"{module}:app",
            host=HOST,
            port=args.port,
            app_dir=str(task_root),
            reload=not args.no_reload,
            reload_dirs=[str(task_root)],
            log_level="info",
        )
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
