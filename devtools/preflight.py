"""The pre-deploy gate's own checks: AWS's rules on the transformed template, samconfig's values."""

# python -m devtools.preflight   # make preflight: one line per finding, exit 1 on any but a warning

import json
import os
import re
import shlex
import sys
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from devtools.cfn_rules.deploy_rules import TRANSFORM_STACK_NAME
from devtools.template import REPO_ROOT, load_template

RULES_DIR = Path(__file__).parent / "cfn_rules"
SAMCONFIG = REPO_ROOT / "samconfig.toml"
PARAMETERS_RULE = "P9001"  # samconfig's parameter values against the template's constraints
TEMPLATE_RULES_RULE = "P9002"  # samconfig's parameter values against the template's Rules assertions
CONCURRENCY_RULE = "W9003"  # a warning: reservations an account at Lambda's default quota cannot hold
Finding = tuple[str, str]  # (rule id, message); rules starting with W warn without failing the gate
# Lambda keeps 100 of an account's concurrent executions unreserved; the default quota is 1,000
# (new accounts may start lower: Service Quotas shows yours).
DEFAULT_ACCOUNT_CONCURRENCY = 1000
UNRESERVED_MINIMUM = 100


class _NoManagedPolicies:
    """The template names no managed policy; SAM's own defaults carry their ARNs."""

    def load(self) -> dict[str, str]:
        return {}


def transform(template: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation receives it after `sam package` and the SAM transform."""
    # From the SAM CLI's environment (.venv-sam): the translator pins a pydantic the app's cannot share.
    from samtranslator.translator.transform import transform as sam_transform  # type: ignore[import-not-found]

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # only names ARNs; nothing is called
    template = {**template, "Resources": {name: dict(r) for name, r in template["Resources"].items()}}
    for name, resource in template["Resources"].items():
        properties = dict(resource.get("Properties", {}))
        if resource["Type"] == "AWS::Serverless::Function":
            properties["CodeUri"] = f"s3://bucket/{name}.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            properties["ContentUri"] = f"s3://bucket/{name}.zip"
        resource["Properties"] = properties
    parameters: dict[str, Any] = {
        "AWS::Region": "us-east-1",
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws",
        "AWS::StackName": TRANSFORM_STACK_NAME,
        "JwtIssuer": "https://issuer.example",
        "JwtAudience": ["audience"],
    }
    for name, parameter in template.get("Parameters", {}).items():
        if "Default" in parameter:
            parameters.setdefault(name, parameter["Default"])
    transformed: dict[str, Any] = sam_transform(template, parameters, _NoManagedPolicies())
    return transformed


@lru_cache(maxsize=1)
def _rules() -> Any:
    from cfnlint.config import ConfigMixIn
    from cfnlint.runner import Runner

    config = ConfigMixIn(append_rules=[str(RULES_DIR)], regions=["us-east-1"])
    return config, Runner(config).rules


def lint(transformed: dict[str, Any]) -> list[Finding]:
    """cfn-lint (its rules and ours) on a transformed template: errors and warnings."""
    from cfnlint.runner import run_template_by_data

    config, rules = _rules()
    return [
        (match.rule.id, f"{'/'.join(str(p) for p in match.path)}: {match.message}")
        for match in run_template_by_data(transformed, config, rules)
        if match.rule.id[0] in "EW"
    ]


def _overrides(environment: dict[str, Any]) -> dict[str, str]:
    raw = environment.get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
    pairs = shlex.split(raw) if isinstance(raw, str) else list(raw)
    return dict(pair.split("=", 1) for pair in pairs)


def parameter_problems(template: dict[str, Any], samconfig: dict[str, Any]) -> list[Finding]:
    """Each environment's parameter_overrides against AllowedValues/Pattern/length/number bounds."""
    parameters = template.get("Parameters", {})
    # A parameter without a Default may be left to `sam deploy --guided`; CloudFormation then keeps it.
    guided = set(template.get("Metadata", {}).get("Preflight", {}).get("GuidedParameters", []))
    problems = []
    for environment, config in sorted(samconfig.items()):
        if not isinstance(config, dict):
            continue
        values = _overrides(config)
        for name, value in values.items():
            spec = parameters.get(name)
            where = f"samconfig [{environment}] {name}={value}"
            if spec is None:
                problems.append(
                    f"{where}: the template has no such parameter; CloudFormation refuses the deploy"
                )
                continue
            problems.extend(f"{where}: {problem}" for problem in _violations(spec, value))
        for name, spec in parameters.items():
            if "Default" not in spec and name not in values and name not in guided:
                problems.append(
                    f"samconfig [{environment}]: {name} has no default and is neither set nor named in "
                    "Metadata Preflight.GuidedParameters; the deploy stops asking for it"
                )
    return [(PARAMETERS_RULE, problem) for problem in problems]


def _violations(spec: dict[str, Any], value: str) -> list[str]:
    found = []
    if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
        found.append(f"not one of AllowedValues {spec['AllowedValues']}")
    if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
        found.append(f"does not match AllowedPattern {spec['AllowedPattern']}")
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        found.append(f"shorter than MinLength {spec['MinLength']}")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        found.append(f"longer than MaxLength {spec['MaxLength']}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            return [*found, "is not a number"]
        if number < float(spec.get("MinValue", number)) or number > float(spec.get("MaxValue", number)):
            found.append(f"outside MinValue/MaxValue {spec.get('MinValue')}..{spec.get('MaxValue')}")
    return found


def _evaluate(expression: Any, values: dict[str, Any]) -> Any:
    """A Rules assertion's value under `values` (the functions template.yaml's Rules use)."""
    if not isinstance(expression, dict):
        return expression
    [(function, argument)] = expression.items()
    if function == "Ref":
        return values[argument]
    arguments = [_evaluate(part, values) for part in argument]
    if function == "Fn::Not":
        return not arguments[0]
    if function == "Fn::Contains":
        return arguments[1] in arguments[0]
    if function == "Fn::Equals":
        return arguments[0] == arguments[1]
    raise ValueError(f"devtools/preflight.py cannot evaluate {function} in the template's Rules")


def template_rule_problems(template: dict[str, Any], samconfig: dict[str, Any]) -> list[Finding]:
    """Each environment's parameters (overrides over defaults) against the template's Rules assertions."""
    parameters = template.get("Parameters", {})
    problems = []
    for environment, config in sorted(samconfig.items()):
        if not isinstance(config, dict):
            continue
        values: dict[str, Any] = {}
        for name, raw in {
            **{n: p.get("Default") for n, p in parameters.items()},
            **_overrides(config),
        }.items():
            is_list = parameters.get(name, {}).get("Type") == "CommaDelimitedList"
            values[name] = [part.strip() for part in str(raw).split(",")] if is_list else raw
        for rule_name, rule in template.get("Rules", {}).items():
            for assertion in rule.get("Assertions", []):
                try:
                    holds = _evaluate(assertion["Assert"], values)
                except KeyError:  # a guided parameter, known only to CloudFormation
                    continue
                if not holds:
                    problems.append(
                        (
                            TEMPLATE_RULES_RULE,
                            f"samconfig [{environment}]: {rule_name}: {assertion['AssertDescription']}",
                        )
                    )
    return problems


def concurrency_warnings(template: dict[str, Any], samconfig: dict[str, Any]) -> list[Finding]:
    """Each environment whose functions together reserve more than an account at the default quota can."""
    names = [name for name in template.get("Parameters", {}) if name.endswith("ReservedConcurrency")]
    room = DEFAULT_ACCOUNT_CONCURRENCY - UNRESERVED_MINIMUM
    warnings = []
    for environment, config in sorted(samconfig.items()):
        if not isinstance(config, dict):
            continue
        values = _overrides(config)
        chosen = {
            name: int(values.get(name, template["Parameters"][name].get("Default", 0)))
            for name in names
            if str(values.get(name, template["Parameters"][name].get("Default", 0))).isdigit()
        }
        if sum(chosen.values()) > room:
            listed = ", ".join(f"{name}={value}" for name, value in chosen.items() if value)
            warnings.append(
                (
                    CONCURRENCY_RULE,
                    f"samconfig [{environment}] reserves {sum(chosen.values())} concurrent executions "
                    f"({listed}): an account at Lambda's default quota ({DEFAULT_ACCOUNT_CONCURRENCY}) can "
                    f"reserve at most {room}, keeping {UNRESERVED_MINIMUM} unreserved; raise the quota first",
                )
            )
    return warnings


def check(template: dict[str, Any], samconfig: dict[str, Any]) -> list[Finding]:
    """Everything this module checks, on one template and samconfig."""
    return (
        lint(transform(template))
        + parameter_problems(template, samconfig)
        + template_rule_problems(template, samconfig)
        + concurrency_warnings(template, samconfig)
    )


def main() -> int:
    if sys.argv[1:2] == ["--batch"]:
        # tests/test_preflight.py: many {"template", "samconfig"} cases, one process (cfn-lint loads once).
        cases = json.loads(sys.stdin.read())
        results = {name: check(case["template"], case["samconfig"]) for name, case in cases.items()}
        print(json.dumps(results))
        return 0
    findings = check(load_template(), tomllib.loads(SAMCONFIG.read_text(encoding="utf-8")))
    for rule, message in findings:
        print(f"{rule} {message}")
    failures = [finding for finding in findings if not finding[0].startswith("W")]
    print(
        f"preflight: {len(failures)} finding(s)" if failures else "preflight: AWS rules and parameters pass"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
