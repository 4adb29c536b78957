"""AWS's own deployment rules that no stock linter checks: cfn-lint custom rules (E9001-E9016)."""

import json
import re
from collections.abc import Iterator
from typing import Any

from cfnlint.rules import CloudFormationLintRule, RuleMatch

# The template after the SAM transform (devtools/preflight.py): the rules see what SAM generates.
Template = dict[str, Any]
# The stack name devtools/preflight.py transforms the template under (SAM resolves AWS::StackName).
TRANSFORM_STACK_NAME = "items-api"
# API Gateway's integration limit (HTTP and REST APIs): a function that may run longer is cut off.
API_GATEWAY_LIMIT_SECONDS = 30


# --- reading a template -------------------------------------------------------


def resources(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    """The resources of one type, by logical id."""
    found = template.get("Resources", {})
    return {name: r for name, r in found.items() if isinstance(r, dict) and r.get("Type") == kind}


def references(value: Any) -> set[str]:
    """Every logical id or parameter a value refers to (Ref, Fn::GetAtt, Fn::Sub ${...})."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".")[0]
                found.add(str(target))
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found.update(name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", str(text)))
                found.update(references(inner[1] if isinstance(inner, list) else {}))
            else:
                found.update(references(inner))
    elif isinstance(value, list):
        for inner in value:
            found.update(references(inner))
    return found


def alternatives(value: Any) -> list[Any]:
    """The values an expression can take: both branches of each Fn::If, AWS::NoValue dropped."""
    if isinstance(value, dict) and "Fn::If" in value:
        _condition, when_true, when_false = value["Fn::If"]
        return alternatives(when_true) + alternatives(when_false)
    if value == {"Ref": "AWS::NoValue"}:
        return []
    return [value]


def conditional(value: Any) -> bool:
    """Whether a value can be switched off by a condition (Fn::If with an AWS::NoValue branch)."""
    if isinstance(value, dict) and "Fn::If" in value:
        _condition, when_true, when_false = value["Fn::If"]
        no_value = {"Ref": "AWS::NoValue"}
        return no_value in (when_true, when_false) or conditional(when_true) or conditional(when_false)
    return False


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(document: Any) -> Iterator[dict[str, Any]]:
    for choice in alternatives(document):
        if isinstance(choice, dict):
            for statement in as_list(choice.get("Statement", [])):
                for each in alternatives(statement):
                    if isinstance(each, dict):
                        yield each


def allows(statement: dict[str, Any], action: str) -> bool:
    """Whether an Allow statement grants the action (wildcards as IAM matches them)."""
    if statement.get("Effect") != "Allow":
        return False
    for granted in as_list(statement.get("Action", [])):
        if isinstance(granted, str):
            pattern = "^" + re.escape(granted.lower()).replace(r"\*", ".*").replace(r"\?", ".") + "$"
            if re.match(pattern, action.lower()):
                return True
    return False


def service_principal(statement: dict[str, Any], service: str) -> bool:
    principal = statement.get("Principal", {})
    if not isinstance(principal, dict):
        return False
    return service in as_list(principal.get("Service", []))


def role_statements(template: Template, role: str) -> list[dict[str, Any]]:
    """Every statement of a role's inline policies and of the managed policies it names."""
    found = resources(template, "AWS::IAM::Role").get(role, {}).get("Properties", {})
    result: list[dict[str, Any]] = []
    for policy in found.get("Policies", []):
        for each in alternatives(policy):
            if isinstance(each, dict):
                result.extend(statements(each.get("PolicyDocument", {})))
    for managed in resources(template, "AWS::IAM::ManagedPolicy").values():
        if role in references(managed.get("Properties", {}).get("Roles", [])):
            result.extend(statements(managed["Properties"].get("PolicyDocument", {})))
    for arn in as_list(found.get("ManagedPolicyArns", [])):
        result.extend(
            AWS_MANAGED_POLICIES.get(str(arn).rsplit("/", 1)[-1], []) if isinstance(arn, str) else []
        )
        if isinstance(arn, dict):  # Fn::Sub of an AWS managed policy's ARN
            text = json.dumps(arn)
            for name, granted in AWS_MANAGED_POLICIES.items():
                if f"/{name}" in text:
                    result.extend(granted)
    return result


# What the AWS managed policies a template may attach grant (their published documents), by
# name; the rules read them, and devtools/deploy_identity.py derives the boundary from them.
AWS_MANAGED_POLICIES: dict[str, list[dict[str, Any]]] = {
    "AWSLambdaBasicExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
    "AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:GetSamplingRules",
                "xray:GetSamplingStatisticSummaries",
                "xray:GetSamplingTargets",
                "xray:PutTelemetryRecords",
                "xray:PutTraceSegments",
            ],
            "Resource": "*",
        }
    ],
    "AmazonAPIGatewayPushToCloudWatchLogs": [
        {
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:DescribeLogGroups",
                "logs:DescribeLogStreams",
                "logs:FilterLogEvents",
                "logs:GetLogEvents",
                "logs:PutLogEvents",
            ],
            "Resource": "*",
        }
    ],
    "AWSLambdaDynamoDBExecutionRole": [
        {
            "Effect": "Allow",
            "Action": [
                "dynamodb:DescribeStream",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
                "dynamodb:ListStreams",
            ],
            "Resource": "*",
        }
    ],
    "AWSLambdaSQSQueueExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
            "Resource": "*",
        }
    ],
}


def function_role(template: Template, function: str) -> str | None:
    role = resources(template, "AWS::Lambda::Function").get(function, {}).get("Properties", {}).get("Role")
    targets = references(role)
    return next(iter(targets)) if len(targets) == 1 else None


def function_of(template: Template, value: Any) -> str | None:
    """The function a FunctionName / integration URI names (through an alias or version too)."""
    functions = resources(template, "AWS::Lambda::Function")
    for name in references(value):
        if name in functions:
            return name
        for kind in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
            target = resources(template, kind).get(name)
            if target:
                found = function_of(template, target["Properties"].get("FunctionName"))
                if found:
                    return found
    return None


# --- the rules -------------------------------------------------------------------
# Each message says what AWS will do and how to fix it (docs/deploy.md lists the rules).


class AlarmTopicDeliverable(CloudFormationLintRule):
    id = "E9001"
    shortdesc = "Alarm topic deliverable"
    description = (
        "An alarm's SNS topic must accept CloudWatch's publish: unencrypted, or encrypted with a "
        "customer managed key whose key policy lets cloudwatch.amazonaws.com use it, and any topic "
        "policy must allow CloudWatch to publish."
    )
    tags = ["cloudwatch", "sns", "kms"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        template: Template = cfn.template
        topics = resources(template, "AWS::SNS::Topic")
        keys = resources(template, "AWS::KMS::Key")
        matches = []
        for name, alarm in resources(template, "AWS::CloudWatch::Alarm").items():
            properties = alarm.get("Properties", {})
            for field in ("AlarmActions", "OKActions", "InsufficientDataActions"):
                for topic in sorted(references(properties.get(field, [])) & set(topics)):
                    path = ["Resources", name, "Properties", field]
                    for problem in self._problems(template, topic, topics[topic], keys):
                        matches.append(RuleMatch(path, f"Alarm {name} notifies topic {topic}: {problem}"))
        return matches

    @staticmethod
    def _problems(
        template: Template, topic: str, resource: dict[str, Any], keys: dict[str, Any]
    ) -> list[str]:
        problems = []
        for key in alternatives(resource.get("Properties", {}).get("KmsMasterKeyId")):
            if isinstance(key, str) and "alias/aws/sns" in key:
                problems.append(
                    "it is encrypted with the AWS managed key alias/aws/sns, whose key policy cannot let "
                    "CloudWatch use it: the alarm changes state and notifies nobody. Encrypt the topic with "
                    "a customer managed key (AWS::KMS::Key) whose policy allows cloudwatch.amazonaws.com "
                    "kms:Decrypt and kms:GenerateDataKey*."
                )
            for key_name in references(key) & set(keys):
                policy = keys[key_name].get("Properties", {}).get("KeyPolicy", {})
                granted = [s for s in statements(policy) if service_principal(s, "cloudwatch.amazonaws.com")]
                if not any(allows(s, "kms:Decrypt") for s in granted) or not any(
                    allows(s, "kms:GenerateDataKey") for s in granted
                ):
                    problems.append(
                        f"its key {key_name} does not let cloudwatch.amazonaws.com use it (kms:Decrypt and "
                        "kms:GenerateDataKey*): CloudWatch's publish fails and the alarm notifies nobody. "
                        "Add a key policy statement for that service principal."
                    )
        for policy in resources(template, "AWS::SNS::TopicPolicy").values():
            properties = policy.get("Properties", {})
            if topic not in references(properties.get("Topics", [])):
                continue
            document = properties.get("PolicyDocument", {})
            if not any(
                allows(s, "sns:Publish") and service_principal(s, "cloudwatch.amazonaws.com")
                for s in statements(document)
            ):
                problems.append(
                    "its topic policy replaces SNS's default policy and does not allow "
                    "cloudwatch.amazonaws.com sns:Publish, so the alarm cannot publish. Add that statement."
                )
        return problems


class AccessLogsNeedTheAccountRole(CloudFormationLintRule):
    id = "E9002"
    shortdesc = "Stage access logs need API Gateway's account logging role"
    description = (
        "REST and WebSocket stages with access logs need the account-level CloudWatch Logs role "
        "(AWS::ApiGateway::Account); create it in the stack (and make the stage depend on it) or "
        "make the access logs switchable off with a condition."
    )
    tags = ["apigateway", "logs"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        template: Template = cfn.template
        accounts = set(resources(template, "AWS::ApiGateway::Account"))
        websocket_apis = {
            name
            for name, api in resources(template, "AWS::ApiGatewayV2::Api").items()
            if api.get("Properties", {}).get("ProtocolType") == "WEBSOCKET"
        }
        stages: list[tuple[str, dict[str, Any], str]] = []
        for name, stage in resources(template, "AWS::ApiGateway::Stage").items():
            stages.append((name, stage, "AccessLogSetting"))
        for name, stage in resources(template, "AWS::ApiGatewayV2::Stage").items():
            if references(stage.get("Properties", {}).get("ApiId")) & websocket_apis:
                stages.append((name, stage, "AccessLogSettings"))
        matches = []
        for name, stage, field in stages:
            settings = stage.get("Properties", {}).get(field)
            if settings is None or conditional(settings):
                continue  # no access logs, or the operator can switch them off
            depends = set(as_list(stage.get("DependsOn", []))) | references(stage)
            if not accounts:
                message = (
                    f"Stage {name} writes access logs, which need API Gateway's account-level CloudWatch "
                    "Logs role: on an account without it CloudFormation fails with 'CloudWatch Logs role "
                    "ARN must be set in account settings' and rolls back. Create an AWS::ApiGateway::Account "
                    "(behind a parameter, it is account-wide) or make the access logs conditional."
                )
                matches.append(RuleMatch(["Resources", name, "Properties", field], message))
            elif not depends & accounts:
                message = (
                    f"Stage {name} writes access logs but does not depend on {sorted(accounts)[0]}: "
                    "CloudFormation may create it before the account's logging role is set, and fail. "
                    "Add a DependsOn (or a Ref in the stage's Metadata when the account is conditional)."
                )
                matches.append(RuleMatch(["Resources", name], message))
        return matches


_PREFLIGHT_METHODS = {"options", "x-amazon-apigateway-any-method"}


class CorsPreflightUnauthorized(CloudFormationLintRule):
    id = "E9003"
    shortdesc = "CORS preflight reaches no authorizer"
    description = (
        "With CORS configured on an HTTP API, no route with an authorizer may match OPTIONS (ANY, "
        "OPTIONS or an authorized $default): API Gateway answers preflights itself only when no "
        "route matches, and a matched preflight carries no token, so it gets 401."
    )
    tags = ["apigateway", "cors"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        template: Template = cfn.template
        matches = []
        for name, api in resources(template, "AWS::ApiGatewayV2::Api").items():
            properties = api.get("Properties", {})
            body = properties.get("Body", {}) if isinstance(properties.get("Body"), dict) else {}
            cors = properties.get("CorsConfiguration") or body.get("x-amazon-apigateway-cors")
            if not cors or not alternatives(cors):
                continue
            for path, methods in body.get("paths", {}).items():
                for method, operation in (methods or {}).items():
                    if method.lower() not in _PREFLIGHT_METHODS and path != "$default":
                        continue
                    if self._authorized(operation):
                        route = f"{method.upper()} {path}"
                        matches.append(
                            RuleMatch(
                                ["Resources", name, "Properties", "Body", "paths", path], self._message(route)
                            )
                        )
            for route_name, route_resource in resources(template, "AWS::ApiGatewayV2::Route").items():
                route_properties = route_resource.get("Properties", {})
                if name not in references(route_properties.get("ApiId")):
                    continue
                key = str(route_properties.get("RouteKey", ""))
                preflight = key == "$default" or key.split(" ", maxsplit=1)[0] in {"ANY", "OPTIONS"}
                if preflight and route_properties.get("AuthorizationType", "NONE") != "NONE":
                    matches.append(
                        RuleMatch(["Resources", route_name, "Properties", "RouteKey"], self._message(key))
                    )
        return matches

    @staticmethod
    def _authorized(operation: Any) -> bool:
        if not isinstance(operation, dict):
            return False
        security = operation.get("security", [])
        return any(name != "NONE" for requirement in security for name in requirement)

    @staticmethod
    def _message(route: str) -> str:
        return (
            f"Route {route} has an authorizer and matches a browser's CORS preflight (OPTIONS, sent "
            "without a token): API Gateway answers it 401 and every cross-origin call fails. Use one "
            "route per method (never ANY) and leave OPTIONS to an unauthorized route or to API Gateway."
        )


_STREAM_READ = (
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
)
_DESTINATION_SEND = {"AWS::SQS::Queue": "sqs:SendMessage", "AWS::SNS::Topic": "sns:Publish"}


class EventSourceMappingPermissions(CloudFormationLintRule):
    id = "E9004"
    shortdesc = "Event source mappings are covered by the function's role"
    description = (
        "Lambda checks at creation that the function's role may read a DynamoDB stream source and "
        "send to the on-failure destination; without those permissions the mapping fails to create."
    )
    tags = ["lambda", "iam", "dynamodb"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        template: Template = cfn.template
        matches = []
        tables = resources(template, "AWS::DynamoDB::Table")
        for name, mapping in resources(template, "AWS::Lambda::EventSourceMapping").items():
            properties = mapping.get("Properties", {})
            function = function_of(template, properties.get("FunctionName"))
            role = function_role(template, function) if function else None
            if role is None:
                continue  # a role from outside the template: nothing to check here
            granted = role_statements(template, role)
            if references(properties.get("EventSourceArn")) & set(tables):
                missing = [a for a in _STREAM_READ if not any(allows(s, a) for s in granted)]
                if missing:
                    matches.append(
                        RuleMatch(
                            ["Resources", name, "Properties", "EventSourceArn"],
                            f"Function {function}'s role {role} lacks {', '.join(missing)} on the stream: "
                            "Lambda refuses to create the event source mapping. Grant them (for example "
                            "the AWSLambdaDynamoDBExecutionRole managed policy).",
                        )
                    )
            destination = properties.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            for target in references(destination):
                kind = template.get("Resources", {}).get(target, {}).get("Type")
                action = _DESTINATION_SEND.get(str(kind))
                covers = [s for s in granted if allows(s, action or "")]
                if action and not any(
                    target in references(s.get("Resource")) or s.get("Resource") == "*" for s in covers
                ):
                    matches.append(
                        RuleMatch(
                            ["Resources", name, "Properties", "DestinationConfig"],
                            f"Function {function}'s role {role} may not {action} to the on-failure "
                            "destination"
                            " "
                            f"{target}: Lambda refuses to create the mapping (and could not deliver failed "
                            "records). Grant that action on that resource.",
                        )
                    )
        return matches


class FunctionTimeouts(CloudFormationLintRule):
    id = "E9005"
    shortdesc = "Function timeouts fit API Gateway and the declared retry budget"
    description = (
        "A function behind API Gateway must time out below the 30 s integration limit, and every "
        "function's timeout must cover its declared worst case (Metadata RetryBudget: calls in a "
        "row x attempts x (connect + read timeouts) + backoff + the function's own time)."
    )
    tags = ["lambda", "apigateway", "retries"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        template: Template = cfn.template
        matches = []
        behind_api = self._behind_api_gateway(template)
        for name, function in resources(template, "AWS::Lambda::Function").items():
            properties = function.get("Properties", {})
            timeout = properties.get("Timeout", 3)
            if not isinstance(timeout, int | float):
                continue
            if name in behind_api and timeout >= API_GATEWAY_LIMIT_SECONDS:
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties", "Timeout"],
                        f"Function {name} is behind API Gateway with a {timeout} s timeout: API Gateway "
                        f"gives up at {API_GATEWAY_LIMIT_SECONDS} s and answers 503 while the function "
                        "runs on. "
                        "Set the timeout below 30 s.",
                    )
                )
            budget = function.get("Metadata", {}).get("RetryBudget")
            if budget is None:
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Metadata"],
                        f"Function {name} declares no RetryBudget in its Metadata, so nothing shows its "
                        "timeout "
                        "covers its AWS calls' retries: declare Calls, MaxAttempts, ConnectTimeout, "
                        "ReadTimeout and AppSeconds.",
                    )
                )
                continue
            worst = worst_case_seconds(budget)
            if worst > timeout:
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties", "Timeout"],
                        f"Function {name} may need {worst:g} s (its RetryBudget) but times out at "
                        f"{timeout} s: "
                        "Lambda stops it mid-retry. Raise the timeout or lower the retries.",
                    )
                )
        return matches

    @staticmethod
    def _behind_api_gateway(template: Template) -> set[str]:
        found = set()
        for permission in resources(template, "AWS::Lambda::Permission").values():
            properties = permission.get("Properties", {})
            if properties.get("Principal") == "apigateway.amazonaws.com":
                function = function_of(template, properties.get("FunctionName"))
                if function:
                    found.add(function)
        return found


def worst_case_seconds(budget: dict[str, Any]) -> float:
    """A RetryBudget's worst case: its app seconds plus each call's (items_core.aws_clients)."""
    from items_core.aws_clients import worst_case_call_seconds

    total = float(budget.get("AppSeconds", 0))
    for call in as_list(budget.get("Calls", [])):
        worst = worst_case_call_seconds(
            int(call.get("MaxAttempts", 1)),
            float(call.get("ConnectTimeout", 0)),
            float(call.get("ReadTimeout", 0)),
        )
        total += int(call.get("Count", 1)) * worst
    return total


class ReservedConcurrencyPerFunction(CloudFormationLintRule):
    id = "E9006"
    shortdesc = "Reserved concurrency is set per function"
    description = (
        "One parameter used as ReservedConcurrentExecutions of several functions reserves that "
        "amount for each of them, and ties their capacity together: give each function its own."
    )
    tags = ["lambda", "concurrency"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        template: Template = cfn.template
        parameters = set(template.get("Parameters", {}))
        users: dict[str, list[str]] = {}
        for name, function in resources(template, "AWS::Lambda::Function").items():
            reserved = function.get("Properties", {}).get("ReservedConcurrentExecutions")
            for parameter in references(reserved) & parameters:
                users.setdefault(parameter, []).append(name)
        return [
            RuleMatch(
                ["Parameters", parameter],
                f"Parameter {parameter} sets the reserved concurrency of {', '.join(sorted(names))}: each "
                "reserves that many executions from the account's pool (so the account's unreserved "
                "capacity shrinks by that many times) and one cannot be changed without the others. Use one "
                "parameter per function.",
            )
            for parameter, names in sorted(users.items())
            if len(names) > 1
        ]


class SnapStartBehindAParameter(CloudFormationLintRule):
    id = "E9007"
    shortdesc = "SnapStart only behind a parameter"
    description = (
        "SnapStart is only available for some runtimes and Regions; enable it only through a "
        "condition on a parameter, so a deploy to a Region without it can switch it off."
    )
    tags = ["lambda", "snapstart"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        template: Template = cfn.template
        parameters = set(template.get("Parameters", {}))
        conditions = template.get("Conditions", {})
        matches = []
        for name, function in resources(template, "AWS::Lambda::Function").items():
            snapstart = function.get("Properties", {}).get("SnapStart")
            if snapstart is None or not alternatives(snapstart):
                continue
            guard = snapstart.get("Fn::If", [None])[0] if isinstance(snapstart, dict) else None
            if not references(conditions.get(guard, {})) & parameters:
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties", "SnapStart"],
                        f"Function {name} enables SnapStart unconditionally: a deploy to a Region "
                        "without it fails. Put SnapStart behind an Fn::If on a parameter, off by default.",
                    )
                )
        return matches


_METRIC_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
# CloudWatch metric math's functions, operators and keywords (names any expression may use).
_FUNCTIONS = frozenset(
    [
        "ABS",
        "ANOMALY_DETECTION_BAND",
        "AVG",
        "CEIL",
        "DATAPOINT_COUNT",
        "DB_PERF_INSIGHTS",
        "DIFF",
        "DIFF_TIME",
        "FILL",
        "FIRST",
        "FLOOR",
        "IF",
        "INSIGHT_RULE_METRIC",
        "LAMBDA",
        "LAST",
        "LOG",
        "LOG10",
        "MAX",
        "MAX_VALUE",
        "METRIC_COUNT",
        "METRICS",
        "MIN",
        "MIN_VALUE",
        "PERIOD",
        "RATE",
        "REMOVE_EMPTY",
        "RUNNING_SUM",
        "SEARCH",
        "SERVICE_QUOTA",
        "SLICE",
        "SORT",
        "STDDEV",
        "SUM",
        "TIME_SERIES",
        "MINUTE",
        "HOUR",
        "DAY",
        "DATE",
        "MONTH",
        "YEAR",
        "EPOCH",
        "AND",
        "OR",
        "NOT",
        "LINEAR",
        "REPEAT",
        "ASC",
        "DESC",
    ]
)
# A number literal, so that `1e3` is not read as a name.
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")


class MetricMathValid(CloudFormationLintRule):
    id = "E9008"
    shortdesc = "Alarm metric math is well formed"
    description = (
        "An alarm's Metrics must have unique ids starting with a lowercase letter, exactly one "
        'ReturnData true, and expressions that name only ids that exist (METRICS("prefix") must '
        "match one); CloudWatch refuses the alarm otherwise."
    )
    tags = ["cloudwatch"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        template: Template = cfn.template
        matches = []
        for name, alarm in resources(template, "AWS::CloudWatch::Alarm").items():
            metrics = alarm.get("Properties", {}).get("Metrics")
            if not isinstance(metrics, list):
                continue
            path = ["Resources", name, "Properties", "Metrics"]
            for problem in metric_math_problems(metrics):
                matches.append(RuleMatch(path, f"Alarm {name}: {problem}; CloudFormation's create fails."))
        return matches


def metric_math_problems(metrics: list[dict[str, Any]]) -> list[str]:
    problems = []
    ids = [str(metric.get("Id", "")) for metric in metrics]
    for metric_id in ids:
        if not _METRIC_ID.match(metric_id):
            problems.append(
                f"metric id {metric_id!r} must start with a lowercase letter (letters, digits, _)"
            )
    if len(set(ids)) != len(ids):
        problems.append("metric ids must be unique")
    returning = [m for m in metrics if m.get("ReturnData", True) is True]
    if len(returning) != 1:
        problems.append(f"exactly one metric must have ReturnData true ({len(returning)} do)")
    for metric in metrics:
        expression = metric.get("Expression")
        if not isinstance(expression, str):
            continue
        for prefix in re.findall(r'METRICS\(\s*"([^"]*)"\s*\)', expression):
            if not any(other.startswith(prefix) for other in ids if other != metric.get("Id")):
                problems.append(f'METRICS("{prefix}") in {metric.get("Id")} matches no metric id')
        if expression.lstrip().upper().startswith("SELECT"):
            continue  # a Metrics Insights query names metrics, not ids
        bare = _NUMBER.sub("", re.sub(r'"[^"]*"', "", expression))
        for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", bare):
            if word.upper() in _FUNCTIONS or word in ids:
                continue
            problems.append(f"expression of {metric.get('Id')} names {word!r}, which is no metric id")
    return problems


class FunctionRoleTrustsLambda(CloudFormationLintRule):
    id = "E9009"
    shortdesc = "A function's role trusts Lambda"
    description = (
        "The role a function runs with must let lambda.amazonaws.com assume it (sts:AssumeRole); "
        "otherwise Lambda cannot create the function."
    )
    tags = ["lambda", "iam"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        template: Template = cfn.template
        roles = resources(template, "AWS::IAM::Role")
        matches = []
        for name in resources(template, "AWS::Lambda::Function"):
            role = function_role(template, name)
            if role not in roles:
                continue
            trust = roles[role].get("Properties", {}).get("AssumeRolePolicyDocument", {})
            if not any(
                allows(s, "sts:AssumeRole") and service_principal(s, "lambda.amazonaws.com")
                for s in statements(trust)
            ):
                matches.append(
                    RuleMatch(
                        ["Resources", role, "Properties", "AssumeRolePolicyDocument"],
                        f"Role {role} of function {name} does not let lambda.amazonaws.com assume it: "
                        "CloudFormation's create of the function fails ('The role defined for the function "
                        "cannot be assumed by Lambda'). Trust that service principal with sts:AssumeRole.",
                    )
                )
        return matches


class JwtRoutesRequireAScope(CloudFormationLintRule):
    id = "E9010"
    shortdesc = "Every JWT-authorized route requires a scope"
    description = (
        "An HTTP API route under a JWT authorizer without authorization scopes accepts any token "
        "of the issuer and audience, ID tokens included: API Gateway checks scopes only when the "
        "route lists some."
    )
    tags = ["apigateway", "authorization"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        template: Template = cfn.template
        matches = []
        for name, api in resources(template, "AWS::ApiGatewayV2::Api").items():
            body = api.get("Properties", {}).get("Body", {})
            if not isinstance(body, dict):
                continue
            schemes = body.get("components", {}).get("securitySchemes", {})
            jwt = {
                s
                for s, spec in schemes.items()
                if spec.get("x-amazon-apigateway-authorizer", {}).get("type") == "jwt"
            }
            for path, methods in body.get("paths", {}).items():
                for method, operation in (methods or {}).items():
                    security = operation.get("security", []) if isinstance(operation, dict) else []
                    if any(scheme in jwt and not scopes for r in security for scheme, scopes in r.items()):
                        matches.append(
                            self._match(
                                ["Resources", name, "Properties", "Body", "paths", path],
                                f"{method.upper()} {path}",
                            )
                        )
        for name, route in resources(template, "AWS::ApiGatewayV2::Route").items():
            properties = route.get("Properties", {})
            if properties.get("AuthorizationType") == "JWT" and not properties.get("AuthorizationScopes"):
                matches.append(
                    self._match(["Resources", name, "Properties"], str(properties.get("RouteKey")))
                )
        return matches

    @staticmethod
    def _match(path: list[str], route: str) -> RuleMatch:
        return RuleMatch(
            path,
            f"Route {route} uses a JWT authorizer without authorization scopes, so API Gateway accepts "
            "ID tokens and access tokens of any scope. Give the authorizer (or the route) "
            "AuthorizationScopes, e.g. [!Ref AuthorizationScope].",
        )


# What only local runs may give a value (`sam local`, from .local/sam-env.json): a deployed stack
# reads its table, its key and its tokens from AWS.
LOCAL_ONLY_VARIABLES = frozenset({"DYNAMODB_ENDPOINT_URL", "CURSOR_SIGNING_KEY"})


class NoLocalTokenCheckDeployed(CloudFormationLintRule):
    id = "E9011"
    shortdesc = "No function can switch on the local token check"
    description = (
        "The API function checks `make token`'s dev tokens itself only under `sam local` "
        "(AWS_SAM_LOCAL=true, set by SAM CLI, and a LOCAL_JWT_SECRET): a deployed function with "
        "both would accept tokens signed with that key instead of relying on API Gateway's authorizer."
    )
    tags = ["lambda", "authorization"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        template: Template = cfn.template
        matches = []
        for name, function in resources(template, "AWS::Lambda::Function").items():
            environment = function.get("Properties", {}).get("Environment", {})
            variables = environment.get("Variables", {}) if isinstance(environment, dict) else {}
            if not isinstance(variables, dict):
                continue
            path = ["Resources", name, "Properties", "Environment", "Variables"]
            for variable, value in variables.items():
                if variable == "AWS_SAM_LOCAL":
                    matches.append(
                        RuleMatch(
                            [*path, variable],
                            f"{name} sets AWS_SAM_LOCAL: Lambda would run it as SAM CLI does, with the "
                            "local token check possible. Remove it (SAM CLI sets it locally).",
                        )
                    )
                elif (variable.startswith("LOCAL_") or variable in LOCAL_ONLY_VARIABLES) and any(
                    v != "" for v in alternatives(value)
                ):
                    matches.append(
                        RuleMatch(
                            [*path, variable],
                            f"{name} gives {variable} a value: it must be the empty string in every "
                            "deployed stack (only `sam local` fills it, from .local/sam-env.json; "
                            "a key there would be readable by anyone who can read the function's "
                            "configuration).",
                        )
                    )
        return matches


class LayerNamedPerStack(CloudFormationLintRule):
    id = "E9012"
    shortdesc = "Every layer is named after its stack"
    description = (
        "A layer without a LayerName is named after its logical id: every stack in the account and "
        "region publishes versions of that one layer, each stack's interleaved with the others'."
    )
    tags = ["lambda"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        template: Template = cfn.template
        return [
            RuleMatch(
                ["Resources", name, "Properties"],
                f"Layer {name} is not named after its stack: give it a LayerName built from "
                "AWS::StackName (!Join or !Sub)",
            )
            for name, layer in resources(template, "AWS::Lambda::LayerVersion").items()
            if not _names_the_stack(layer.get("Properties", {}).get("LayerName"))
        ]


def _names_the_stack(value: Any) -> bool:
    """Whether a value is built from AWS::StackName (an intrinsic, or resolved to TRANSFORM_STACK_NAME)."""
    if "AWS::StackName" in references(value):
        return True
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        value = separator.join(parts) if all(isinstance(part, str) for part in parts) else None
    elif isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        value = value["Fn::Sub"]
    return isinstance(value, str) and value.startswith(f"{TRANSFORM_STACK_NAME}-")


def _http_apis(template: Template) -> dict[str, dict[str, Any]]:
    """HTTP APIs (not WebSocket ones, whose $default route serves authenticated connections)."""
    return {
        name: api
        for name, api in resources(template, "AWS::ApiGatewayV2::Api").items()
        if api.get("Properties", {}).get("ProtocolType", "HTTP") == "HTTP"
        or isinstance(api.get("Properties", {}).get("Body"), dict)
    }


def _catch_all(path: str) -> bool:
    return path == "$default" or "+}" in path


class NoUnauthenticatedCatchAll(CloudFormationLintRule):
    id = "E9013"
    shortdesc = "No catch-all route reaches a function unauthenticated"
    description = (
        "An HTTP API's $default or greedy ({proxy+}) route without an authorizer invokes the "
        "function for any path anyone sends: scanners cost invocations and take concurrency from "
        "real callers. Name each public path; any other path is then API Gateway's own 404."
    )
    tags = ["apigateway", "authorization"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        template: Template = cfn.template
        apis = _http_apis(template)
        matches = []
        for name, api in apis.items():
            body = api.get("Properties", {}).get("Body", {})
            for path, methods in (body.get("paths", {}) if isinstance(body, dict) else {}).items():
                for operation in (methods or {}).values():
                    if _catch_all(path) and not CorsPreflightUnauthorized._authorized(operation):
                        matches.append(
                            self._match(["Resources", name, "Properties", "Body", "paths", path], path)
                        )
        for name, route in resources(template, "AWS::ApiGatewayV2::Route").items():
            properties = route.get("Properties", {})
            key = str(properties.get("RouteKey", ""))
            on_http_api = bool(references(properties.get("ApiId")) & set(apis))
            if on_http_api and _catch_all(key) and properties.get("AuthorizationType", "NONE") == "NONE":
                matches.append(self._match(["Resources", name, "Properties", "RouteKey"], key))
        return matches

    @staticmethod
    def _match(path: list[str], route: str) -> RuleMatch:
        return RuleMatch(
            path,
            f"Route {route} reaches the function for any path without an authorizer: name each "
            "public path as its own route (e.g. /health, /docs) and let API Gateway answer 404 to the rest.",
        )


VENDED_LOGS_PREFIX = "/aws/vendedlogs/"


class AccessLogsUnderVendedLogs(CloudFormationLintRule):
    id = "E9014"
    shortdesc = "Access log groups are named under /aws/vendedlogs/"
    description = (
        "API Gateway delivers HTTP API access logs as vended logs: where the account's CloudWatch "
        "Logs resource policy is used (5,120 characters per Region, entries not removed when a "
        "stack is deleted), each destination group outside /aws/vendedlogs/ adds an entry, so "
        "stacks with generated group names can fill it; one wildcard entry covers the prefix."
    )
    tags = ["apigateway", "logs"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        template: Template = cfn.template
        groups = resources(template, "AWS::Logs::LogGroup")
        matches = []
        for name, stage in resources(template, "AWS::ApiGatewayV2::Stage").items():
            for settings in alternatives(stage.get("Properties", {}).get("AccessLogSettings")):
                destination = settings.get("DestinationArn") if isinstance(settings, dict) else None
                if destination is None:
                    continue
                targets = references(destination) & set(groups)
                group_names = [groups[t].get("Properties", {}).get("LogGroupName") for t in targets]
                if not targets or not all(_under_vended_logs(n) for n in group_names):
                    matches.append(
                        RuleMatch(
                            ["Resources", name, "Properties", "AccessLogSettings", "DestinationArn"],
                            f"Stage {name} sends access logs to a log group not named under "
                            f"{VENDED_LOGS_PREFIX}: give the template's group a LogGroupName such as "
                            f"!Sub {VENDED_LOGS_PREFIX}apigateway/${{AWS::StackName}}/access",
                        )
                    )
        return matches


def _under_vended_logs(value: Any) -> bool:
    text = value.get("Fn::Sub") if isinstance(value, dict) else value
    return isinstance(text, str) and text.startswith(VENDED_LOGS_PREFIX)


BOUNDARY_PARAMETER = "PermissionsBoundaryPolicy"


class RolesCarryTheBoundary(CloudFormationLintRule):
    id = "E9015"
    shortdesc = "Every role carries the stack's permissions boundary"
    description = (
        "The CloudFormation service roles may create roles only with the permissions boundary "
        f"named by {BOUNDARY_PARAMETER} (identities/template.json): a role without it fails the "
        "deploy, and would otherwise be a way to grant more than the deploy identity may."
    )
    tags = ["iam"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        template: Template = cfn.template
        return [
            RuleMatch(
                ["Resources", name, "Properties"],
                f"Role {name} has no PermissionsBoundary naming the {BOUNDARY_PARAMETER} parameter: add "
                "PermissionsBoundary: !Sub arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/"
                f"${{{BOUNDARY_PARAMETER}}} (Globals.Function for the roles SAM generates)",
            )
            for name, role in resources(template, "AWS::IAM::Role").items()
            if conditional(role.get("Properties", {}).get("PermissionsBoundary"))
            or BOUNDARY_PARAMETER not in references(role.get("Properties", {}).get("PermissionsBoundary"))
        ]


# One per account and Region: a stack that creates one unconditionally overwrites every other
# stack's setting there.
ACCOUNT_SINGLETONS = frozenset({"AWS::ApiGateway::Account"})


class SingletonsBehindACondition(CloudFormationLintRule):
    id = "E9016"
    shortdesc = "Account-wide settings only behind a condition"
    description = (
        "Some resources are one setting per account and Region (API Gateway's account logging "
        "role): every stack that declares one unconditionally writes it, each over the others, "
        "so exactly one stack per account and Region may own it, chosen by a parameter."
    )
    tags = ["apigateway"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        template: Template = cfn.template
        return [
            RuleMatch(
                ["Resources", name],
                f"{name} ({kind}) is one setting per account and Region: create it only behind a "
                "Condition chosen by a parameter, so one stack per account and Region owns it",
            )
            for kind in sorted(ACCOUNT_SINGLETONS)
            for name, resource in resources(template, kind).items()
            if not resource.get("Condition")
        ]
