"""Print template.yaml as CloudFormation after the SAM transform (checkov, cfn-lint), without AWS access."""

import json
import sys

# transform() needs aws-sam-translator: run this in the SAM CLI's environment (.venv-sam).
from devtools.preflight import transform
from devtools.template import load_template


def main() -> int:
    json.dump(transform(load_template()), sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
