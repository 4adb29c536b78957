"""Print template.yaml as CloudFormation after the SAM transform (checkov, cfn-lint), without AWS access.

Runs in the SAM CLI's virtual environment, which carries aws-sam-translator.
"""

import json
import sys

from devtools.preflight import transform
from devtools.template import load_template


def main() -> int:
    json.dump(transform(load_template()), sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
