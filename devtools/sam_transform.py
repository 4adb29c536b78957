"""Print template.yaml as CloudFormation after the SAM transform (for checkov), without AWS access.

Runs in the checkov virtual environment, which carries aws-sam-translator.
"""

import json
import os
import sys
from typing import Any

from samtranslator.translator.transform import transform  # type: ignore[import-not-found]

from devtools.template import load_template


class _NoManagedPolicies:
    """The template names no managed policy; SAM's own defaults carry their ARNs."""

    def load(self) -> dict[str, str]:
        return {}


def main() -> int:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # only names ARNs; nothing is called
    template = load_template()
    # As `sam package` would: local code folders become S3 locations.
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://bucket/{name}.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = f"s3://bucket/{name}.zip"
    parameters: dict[str, Any] = {
        "AWS::Region": "us-east-1",
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws",
        "AWS::StackName": "items-api",
        "JwtIssuer": "https://issuer.example",
        "JwtAudience": ["audience"],
    }
    for name, parameter in template.get("Parameters", {}).items():
        if "Default" in parameter:
            parameters.setdefault(name, parameter["Default"])
    transformed = transform(template, parameters, _NoManagedPolicies())
    json.dump(transformed, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
