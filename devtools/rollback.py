"""`make rollback FUNCTION=… VERSION=…`: move the API's `live` alias back, unless that crosses a layout."""

import argparse
import sys
from typing import Any

import boto3

ALIAS = "live"


def layout_of(client: Any, function: str, version: str) -> str:
    """The storage layout a published version writes."""
    configuration = client.get_function_configuration(FunctionName=function, Qualifier=version)
    # Versions published before the STORAGE_LAYOUT variable existed write layout 1.
    return str(configuration.get("Environment", {}).get("Variables", {}).get("STORAGE_LAYOUT", "1"))


def rollback(client: Any, function: str, version: str) -> str:
    """Move the alias to `version` and say so, or raise RollbackRefused."""
    current = client.get_alias(FunctionName=function, Name=ALIAS)["FunctionVersion"]
    now, then = layout_of(client, function, current), layout_of(client, function, version)
    if now != then:
        raise RollbackRefused(
            f"version {version} writes storage layout {then}, the live version {current} writes layout {now}:"
            " an alias move across a layout change would leave rows the newer code misreads. Roll back by"
            " redeploying the previous commit (sam deploy from its tag); the stack brings the data in"
            " line on the way back and on the way forward (docs/deploy.md, Upgrading and rolling back)."
        )
    client.update_alias(FunctionName=function, Name=ALIAS, FunctionVersion=version)
    return f"{function}:{ALIAS} now points at version {version} (was {current}; both write layout {now})"


class RollbackRefused(Exception):
    """The alias move would cross a storage layout change."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--function-name", required=True, help="the stack's FunctionName output")
    parser.add_argument("--version", required=True, help="the published version to go back to")
    args = parser.parse_args(argv)
    try:
        print(rollback(boto3.client("lambda"), args.function_name, args.version))
    except RollbackRefused as error:
        print(f"make rollback: refused: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
