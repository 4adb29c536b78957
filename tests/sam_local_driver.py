"""SAM CLI's `sam local start-api`, driven in SAM CLI's own environment (.venv-sam), minus Docker.

Everything between the HTTP request and the function is SAM CLI's own code, as pinned in
requirements-sam.txt: the stacks read from template.yaml (SamLocalStackProvider), the route table
and its authorizers (ApiProvider), the Flask service that matches routes and builds each event
(LocalApigwService), and the runner that resolves the function and its environment from the
template and the --env-vars file (LocalLambdaRunner). Only the container is replaced:
InProcessRuntime stands where samcli.local.lambdafn.runtime.LambdaRuntime would start Docker,
and hands the function's configuration and event to the test process, which runs the handler
(tests/test_sam_local.py) and sends back what the function returned.

Protocol: JSON lines prefixed with "@@ " on stdout (SAM CLI's own output goes to stderr).
  driver -> test: {"ready": [routes]}, {"invoke": {...}}, {"response": {...}}
  test -> driver: {"request": {...}} (start-api), {"local_invoke": {...}} (invoke), {"result": "<the
  function's JSON output>"}; driver -> test also {"output": ...} for an invoke
"""

import base64
import io
import json
import logging
import sys
from typing import Any

from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
from samcli.lib.providers.api_provider import ApiProvider
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
from samcli.lib.utils.stream_writer import StreamWriter
from samcli.local.apigw.local_apigw_service import LocalApigwService

PREFIX = "@@ "


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(PREFIX + json.dumps(message) + "\n")
    sys.stdout.flush()


def receive() -> dict[str, Any]:
    line = sys.stdin.readline()
    if not line:
        raise SystemExit(0)
    message: dict[str, Any] = json.loads(line)
    return message


class InProcessRuntime:
    """Where SAM CLI would run the function in a container: the test process runs it instead."""

    def invoke(self, function_config: Any, event: str, tenant_id: Any = None, **kwargs: Any) -> None:
        send(
            {
                "invoke": {
                    "function": function_config.name,
                    "handler": function_config.handler,
                    "runtime": function_config.runtime,
                    "code": function_config.code_abs_path,
                    "environment": function_config.env_vars.resolve(),
                    "event": event,
                }
            }
        )
        kwargs["stdout"].write_str(receive()["result"])


def main(template: str, env_vars_file: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    with open(env_vars_file, encoding="utf-8") as file:
        env_vars = json.load(file)
    stacks, _ = SamLocalStackProvider.get_stacks(template)
    cwd = str(__import__("pathlib").Path(template).resolve().parent)
    runner = LocalLambdaRunner(
        local_runtime=InProcessRuntime(),  # type: ignore[arg-type]
        function_provider=SamFunctionProvider(stacks),
        cwd=cwd,
        real_path=cwd,
        env_vars_values=env_vars,
    )
    api = ApiProvider(stacks, cwd=cwd).api
    service = LocalApigwService(
        api=api, lambda_runner=runner, port=3000, host="127.0.0.1", stderr=StreamWriter(sys.stderr)
    )
    service.create()
    client = service._app.test_client()
    send({"ready": sorted(f"{','.join(sorted(route.methods))} {route.path}" for route in api.routes)})
    while True:
        message = receive()
        if "local_invoke" in message:  # `sam local invoke <function> --event <file>`
            output = io.StringIO()
            runner.invoke(
                message["local_invoke"]["function"],
                message["local_invoke"]["event"],
                stdout=StreamWriter(output),
            )
            send({"output": output.getvalue()})
            continue
        request = message["request"]
        response = client.open(
            request["path"],
            method=request["method"],
            headers=request["headers"],
            data=base64.b64decode(request["body"]),
            query_string=request.get("query", ""),
        )
        send(
            {
                "response": {
                    "status": response.status_code,
                    "headers": [[name, value] for name, value in response.headers.items()],
                    "body": base64.b64encode(response.get_data()).decode(),
                }
            }
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
