"""`sam local start-api` serves every route with a `make token` token (issue 21), proven without Docker.

SAM CLI's own local API emulation runs in its environment (tests/sam_local_driver.py): its route
table from template.yaml, its event construction, its authorizer handling and its function
runner with the --env-vars file `make dynamodb` writes. Only the container is replaced: each
invoke comes back here and runs the API function's handler in this process, as a fresh container
would (the environment SAM CLI resolved for it, nothing cached). The database is DynamoDB Local
with the tables `make dynamodb` creates.
"""

import asyncio
import base64
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import LambdaContext
from tests.test_preflight import SAM_PYTHON

pytestmark = pytest.mark.slow  # SAM CLI serves the API in a driver process

REPO_ROOT = Path(__file__).resolve().parent.parent
DRIVER = Path(__file__).resolve().parent / "sam_local_driver.py"
PREFIX = "@@ "


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def run_function(invoke: dict[str, Any]) -> str:
    """What the container would do: run the handler in the environment SAM CLI resolved, from cold."""
    from mangum import Mangum

    from app import dependencies, owner_reference, settings
    from app.main import create_app
    from app.sam_local import sam_local_token_verifier

    assert (invoke["function"], invoke["handler"], invoke["runtime"]) == (
        "ApiFunction",
        "app.main.handler",
        "python3.13",
    )
    assert Path(invoke["code"]).resolve() == REPO_ROOT / "functions" / "api"
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update({"PATH": saved.get("PATH", ""), **invoke["environment"]})
    for cached in (
        settings.get_settings,
        dependencies.get_botocore_session,
        dependencies.get_dynamodb_client,
        dependencies.get_single_attempt_client,
        dependencies.get_layout_reader,
        dependencies.get_item_store,
        dependencies.get_idempotency_store,
        dependencies.get_stack_key,
        dependencies.get_cursor_signer,
        owner_reference.get_owner_reference_key,
        dependencies.get_owner_rates,
    ):
        cached.cache_clear()
    try:
        handler = Mangum(create_app(token_verifier=sam_local_token_verifier()), lifespan="off")
        return json.dumps(handler(json.loads(invoke["event"]), LambdaContext()))
    finally:
        # The container ends: its connections close with it.
        for client in (dependencies.get_dynamodb_client, dependencies.get_single_attempt_client):
            if client.cache_info().currsize:
                client().close()
        os.environ.clear()
        os.environ.update(saved)


class SamLocalApi:
    """`sam local start-api` over template.yaml, answering through SAM CLI's Flask service."""

    def __init__(self, env_vars_file: Path) -> None:
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", ""),
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "SAM_CLI_TELEMETRY": "0",
        }
        self.process = subprocess.Popen(  # noqa: S603 - our own driver, in SAM CLI's venv
            [str(SAM_PYTHON), str(DRIVER), str(REPO_ROOT / "template.yaml"), str(env_vars_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            cwd=REPO_ROOT,
        )
        self.routes: list[str] = self._next()["ready"]
        self.invocations = 0
        self.events = Path()

    def _next(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                assert self.process.stderr is not None
                raise AssertionError(f"the SAM CLI driver stopped: {self.process.stderr.read()[-4000:]}")
            if line.startswith(PREFIX):
                message: dict[str, Any] = json.loads(line[len(PREFIX) :])
                return message

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
    ) -> Answer:
        sent = dict(headers or {})
        body = b""
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        self._send(
            {
                "request": {
                    "method": method,
                    "path": path,
                    "headers": sent,
                    "body": base64.b64encode(body).decode(),
                    "query": urlencode(query or {}),
                }
            }
        )
        while True:
            message = self._next()
            if "invoke" in message:
                self.invocations += 1
                self._send({"result": run_function(message["invoke"])})
                continue
            response = message["response"]
            return Answer(
                response["status"],
                {name.lower(): value for name, value in response["headers"]},
                base64.b64decode(response["body"]),
            )

    def invoke(self, function: str, event_file: Path) -> Any:
        """`sam local invoke <function> --event <event_file> --env-vars <the same file>`."""
        self._send({"local_invoke": {"function": function, "event": event_file.read_text(encoding="utf-8")}})
        while True:
            message = self._next()
            if "invoke" in message:
                self._send({"result": run_function(message["invoke"])})
                continue
            return json.loads(message["output"])

    def close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def sam_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamLocalApi]:
    """`make dynamodb` (DynamoDB Local, its tables, .local/sam-env.json), then `sam local start-api`."""
    if not SAM_PYTHON.exists():
        pytest.fail("SAM CLI's environment is missing: make pytest installs it (.venv-sam)")
    from devtools.run import start_dynamodb, write_sam_env

    directory = tmp_path_factory.mktemp("sam-local")
    loop = asyncio.new_event_loop()  # Mangum runs each invocation on the thread's loop
    asyncio.set_event_loop(loop)
    saved = dict(os.environ)
    server, _changes = start_dynamodb(0, None)
    try:
        write_sam_env("127.0.0.1", server.port, directory)
        api = SamLocalApi(directory / "sam-env.json")
        api.events = directory / "events"
        try:
            yield api
        finally:
            api.close()
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)
        asyncio.set_event_loop(None)
        loop.close()


def token(owner: str, **claims: Any) -> str:
    from devtools.local_auth import issue_token
    from devtools.local_env import local_jwt_secret

    return issue_token(local_jwt_secret(), owner, **claims)


def test_sam_cli_mounts_every_route_of_the_api(sam_local: SamLocalApi) -> None:
    """Each /items operation is its own authorized route, each public path its own route; no $default."""
    from app.main import create_app

    paths = create_app().openapi()["paths"]
    operations = {f"{method.upper()} {path}" for path, methods in paths.items() for method in methods}
    mounted = {
        f"{method} {route.split(' ', 1)[1]}"
        for route in sam_local.routes
        for method in route.split(" ")[0].split(",")
    }
    assert operations <= mounted, (operations, mounted)
    assert not any(route.endswith(" $default") for route in sam_local.routes)
    assert {"/health", "/docs", "/redoc", "/openapi.json", "/docs/assets/{name}"} <= {
        route.split(" ", 1)[1] for route in sam_local.routes
    }


def test_every_items_route_serves_a_make_token_owner_and_keeps_owners_apart(sam_local: SamLocalApi) -> None:
    alice, bob = token("alice-sam"), token("bob-sam")
    created = sam_local.request(
        "POST", "/items", token=alice, json_body={"name": "Lamp", "price": 3, "tags": ["home"]}
    )
    assert created.status == 201, created.body
    item = created.json()
    path = f"/items/{item['id']}"
    assert created.headers["location"] == path
    assert created.headers["etag"] == f'"{item["id"]}-1"'
    assert sam_local.request("GET", path, token=alice).json() == item
    assert sam_local.request("GET", path, token=bob).status == 404  # another owner's id is no item
    listed = sam_local.request("GET", "/items", token=alice, query={"tag": "home"})
    assert [i["id"] for i in listed.json()["items"]] == [item["id"]]
    assert sam_local.request("GET", "/items", token=bob).json()["items"] == []
    patched = sam_local.request(
        "PATCH", path, token=alice, json_body={"price": 4}, headers={"If-Match": created.headers["etag"]}
    )
    assert (patched.status, patched.json()["price"], patched.json()["version"]) == (200, 4, 2)
    assert patched.headers["cache-control"] == "no-store"  # the edge's headers, as deployed
    stale = sam_local.request(
        "PUT",
        path,
        token=alice,
        json_body={"name": "L", "price": 1},
        headers={"If-Match": created.headers["etag"]},
    )
    assert stale.status == 412
    assert sam_local.request("DELETE", path, token=bob).status == 404
    assert sam_local.request("DELETE", path, token=alice).status == 204
    assert sam_local.request("GET", path, token=alice).status == 404


def test_a_cursor_from_one_invocation_continues_in_the_next(sam_local: SamLocalApi) -> None:
    """Each invoke is a fresh container: the cursor key comes from sam-env.json, not from one process."""
    owner = token("carol-sam")
    for number in range(3):
        assert (
            sam_local.request(
                "POST", "/items", token=owner, json_body={"name": f"n{number}", "price": 1}
            ).status
            == 201
        )
    first = sam_local.request("GET", "/items", token=owner, query={"limit": 2}).json()
    rest = sam_local.request("GET", "/items", token=owner, query={"limit": 2, "cursor": first["next_cursor"]})
    assert rest.status == 200, rest.body
    assert len(first["items"]) + len(rest.json()["items"]) == 3


def test_tokens_are_refused_as_api_gateway_refuses_them(sam_local: SamLocalApi) -> None:
    missing = sam_local.request("GET", "/items")
    assert (missing.status, missing.json(), missing.headers["www-authenticate"]) == (
        401,
        {"detail": "Not authenticated"},
        "Bearer",
    )
    assert sam_local.request("GET", "/items", token=token("alice-sam", exp=1)).status == 401
    assert sam_local.request("GET", "/items", token="not.a.token").status == 401
    scopeless = sam_local.request("GET", "/items", token=token("alice-sam", scope="openid"))
    assert scopeless.status == 403
    assert "items-api/items" in scopeless.json()["detail"]
    invalid = sam_local.request(
        "POST", "/items", token=token("alice-sam"), json_body={"name": "", "price": -1}
    )
    assert invalid.status == 422


def test_public_routes_answer_without_a_token(sam_local: SamLocalApi) -> None:
    health = sam_local.request("GET", "/health")
    assert health.status == 200
    assert "x-request-id" in health.headers
    assert sam_local.request("GET", "/openapi.json").json()["info"]["title"] == "Items API"
    docs = sam_local.request("GET", "/docs")
    assert docs.status == 200
    assert b"swagger" in docs.body.lower()


def test_the_local_token_check_is_off_wherever_sam_cli_does_not_run_the_function(
    environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deployed, neither AWS_SAM_LOCAL nor a key is set (E9011 refuses both): no verifier exists."""
    from app.sam_local import sam_local_token_verifier

    monkeypatch.setenv("LOCAL_JWT_SECRET", "k" * 40)
    monkeypatch.delenv("AWS_SAM_LOCAL", raising=False)
    assert sam_local_token_verifier() is None  # a key alone: Lambda never sets AWS_SAM_LOCAL
    monkeypatch.setenv("AWS_SAM_LOCAL", "true")
    monkeypatch.setenv("LOCAL_JWT_SECRET", "")  # the template's value
    assert sam_local_token_verifier() is None
    monkeypatch.setenv("AWS_SAM_LOCAL", "1")
    monkeypatch.setenv("LOCAL_JWT_SECRET", "k" * 40)
    assert sam_local_token_verifier() is None
    monkeypatch.setenv("AWS_SAM_LOCAL", "true")
    assert sam_local_token_verifier() is not None


def test_sam_local_invoke_serves_the_generated_events(sam_local: SamLocalApi) -> None:
    """Events carrying the authorizer's claims (as API Gateway sends them) need no token."""
    created = sam_local.invoke("ApiFunction", sam_local.events / "create-item.json")
    assert created["statusCode"] == 201, created
    listed = sam_local.invoke("ApiFunction", sam_local.events / "list-items.json")
    assert listed["statusCode"] == 200
    assert json.loads(listed["body"])["items"][-1]["id"] == json.loads(created["body"])["id"]
