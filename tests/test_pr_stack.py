"""devtools/pr_stack.py: the pull-request stack's alarm-delivery probe and cleanup, against moto."""

import fnmatch
import json
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto import mock_aws

from devtools import pr_stack
from devtools.iam_analyzer import identity_policies

pytestmark = pytest.mark.slow  # the pipeline's AWS scripts against moto

STACK = "items-api-pr-7"
PROBE_TEMPLATE = {
    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    "Outputs": {"AlarmTopicArn": {"Value": {"Ref": "Topic"}}},
}
ALARM = f"{STACK}-LatencyP99Alarm-1AB2C3"


def probe_stack(session: Any) -> None:
    """The stack's topic, and an alarm named as CloudFormation names it (moto's CloudFormation has none)."""
    cloudformation = session.client("cloudformation")
    cloudformation.create_stack(StackName=STACK, TemplateBody=json.dumps(PROBE_TEMPLATE))
    topic = pr_stack._output(cloudformation, STACK, "AlarmTopicArn")
    session.client("cloudwatch").put_metric_alarm(
        AlarmName=ALARM,
        Namespace="AWS/ApiGateway",
        MetricName="Latency",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
        AlarmActions=[topic],
    )


# What the pull-request GitHub role may call (identities/template.json, rendered for pr).
PR_ROLE = dict(identity_policies("pr"))["pr/github-role"]
# Where a client's endpoint prefix is not its IAM prefix.
IAM_PREFIX = {"monitoring": "cloudwatch"}


def _granted_to_the_pr_role(action: str) -> bool:
    return any(
        fnmatch.fnmatchcase(action.lower(), granted.lower())
        for statement in PR_ROLE["Statement"]
        if statement["Effect"] == "Allow"
        for granted in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
    )


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto session; at the end, every call devtools/pr_stack.py made must be the pr role's to make."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    called: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        # The call's maker: the innermost frame outside botocore and boto3 (not a test's stand-in
        # for CloudWatch, which publishes from inside pr_stack's SetAlarmState).
        callers = [
            f
            for f in traceback.extract_stack()[:-1]
            if "/botocore/" not in f.filename and "/boto3/" not in f.filename
        ]
        if callers[-1].filename.endswith("devtools/pr_stack.py"):
            prefix = model.service_model.endpoint_prefix
            called.add(f"{IAM_PREFIX.get(prefix, prefix)}:{model.name}")

    with mock_aws():
        made = boto3.session.Session()
        made.events.register("before-call", record)
        yield made
    assert {action for action in called if not _granted_to_the_pr_role(action)} == set()


def deliver_like_cloudwatch(session: Any) -> None:
    """moto records SetAlarmState but notifies nobody: publish what CloudWatch would, to its actions."""

    def publish(params: dict[str, Any], **_: Any) -> None:
        if params["StateValue"] != "ALARM":
            return
        cloudwatch = session.client("cloudwatch")
        [alarm] = cloudwatch.describe_alarms(AlarmNames=[params["AlarmName"]])["MetricAlarms"]
        for topic in alarm["AlarmActions"]:
            message = {"AlarmName": alarm["AlarmName"], "NewStateValue": "ALARM"}
            session.client("sns").publish(TopicArn=topic, Message=json.dumps(message))

    original = session.client

    def client(name: str, *args: Any, **kwargs: Any) -> Any:
        made = original(name, *args, **kwargs)
        if name == "cloudwatch":
            made.meta.events.register("provide-client-params.cloudwatch.SetAlarmState", publish)
        return made

    session.client = client


@pytest.mark.slow
def test_the_probe_sees_the_alarm_reach_a_subscriber_and_leaves_nothing(session: Any) -> None:
    probe_stack(session)
    deliver_like_cloudwatch(session)
    assert pr_stack.alarm_probe(session, STACK, timeout=5, poll_seconds=1) == ALARM
    assert session.client("sqs").list_queues().get("QueueUrls", []) == []
    [alarm] = session.client("cloudwatch").describe_alarms()["MetricAlarms"]
    assert alarm["StateValue"] == "OK"  # put back
    pr_stack.cleanup(session, STACK, timeout=5, poll_seconds=0.01)
    assert session.client("sns").list_subscriptions()["Subscriptions"] == []  # gone with the topic


def test_the_probe_fails_when_no_notification_arrives(session: Any) -> None:
    probe_stack(session)
    with pytest.raises(TimeoutError, match=f"no notification of {ALARM}"):
        pr_stack.alarm_probe(session, STACK, timeout=2, poll_seconds=1)  # moto's CloudWatch notifies nobody
    assert session.client("sqs").list_queues().get("QueueUrls", []) == []  # cleaned up on failure too


def _table(session: Any, name: str, protected: bool) -> None:
    session.client("dynamodb").create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        DeletionProtectionEnabled=protected,
    )


def test_retained_tables_of_a_pull_request_stack_are_deleted(session: Any) -> None:
    _table(session, "items-api-pr-7-ItemsTable-ABC", protected=False)
    deleted = pr_stack.delete_retained(session, [("AWS::DynamoDB::Table", "items-api-pr-7-ItemsTable-ABC")])
    assert deleted == ["AWS::DynamoDB::Table items-api-pr-7-ItemsTable-ABC"]
    assert session.client("dynamodb").list_tables()["TableNames"] == []


def test_a_protected_table_is_never_unprotected(session: Any) -> None:
    _table(session, "items-api-prod-ItemsTable-XYZ", protected=True)
    with pytest.raises(RuntimeError, match="deletion protection"):
        pr_stack.delete_retained(session, [("AWS::DynamoDB::Table", "items-api-prod-ItemsTable-XYZ")])
    assert session.client("dynamodb").list_tables()["TableNames"] == ["items-api-prod-ItemsTable-XYZ"]


@pytest.mark.parametrize("stack", ["items-api-prod", "items-api-staging", "items-api-pr-", "other-pr-1"])
def test_only_pull_request_stacks_are_touched(session: Any, stack: str) -> None:
    with pytest.raises(pr_stack.NotAPullRequestStack):
        pr_stack.cleanup(session, stack)


def test_cleanup_deletes_the_stack_then_what_it_retained(session: Any) -> None:
    template = {
        "Resources": {
            "ItemsTable": {
                "Type": "AWS::DynamoDB::Table",
                "DeletionPolicy": "Retain",
                "Properties": {
                    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                    "BillingMode": "PAY_PER_REQUEST",
                },
            }
        }
    }
    session.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))
    assert len(session.client("dynamodb").list_tables()["TableNames"]) == 1
    deleted = pr_stack.cleanup(session, STACK)
    assert [entry.split(" ")[0] for entry in deleted] == ["AWS::DynamoDB::Table"]
    assert session.client("dynamodb").list_tables()["TableNames"] == []
    assert pr_stack.cleanup(session, STACK) == []  # a second run (PR closed after a failed job) is no error


def test_every_retained_resource_type_has_a_cleanup() -> None:
    kinds = set(pr_stack.retained_logical_ids().values())
    assert kinds <= set(pr_stack.DELETERS), kinds


def test_a_retained_role_is_emptied_and_deleted(session: Any) -> None:
    iam = session.client("iam")
    trust = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "apigateway.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ]
    }
    iam.create_role(RoleName="items-api-pr-7-logging", AssumeRolePolicyDocument=json.dumps(trust))
    statement = {"Effect": "Allow", "Action": "logs:CreateLogGroup", "Resource": "*"}
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    managed = iam.create_policy(PolicyName="p", PolicyDocument=document)
    iam.attach_role_policy(RoleName="items-api-pr-7-logging", PolicyArn=managed["Policy"]["Arn"])
    iam.put_role_policy(RoleName="items-api-pr-7-logging", PolicyName="inline", PolicyDocument=document)
    assert pr_stack.delete_retained(session, [("AWS::IAM::Role", "items-api-pr-7-logging")]) == [
        "AWS::IAM::Role items-api-pr-7-logging"
    ]
    assert [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("items-api")] == []


# moto's CloudFormation finishes every operation at once: the states a cancelled run leaves are
# injected into what DescribeStacks (and ListStackResources) answer, by botocore event hooks on
# the session, which every client the cleanup creates inherits.


def _table_resource(retain: bool) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    }
    if retain:
        resource["DeletionPolicy"] = "Retain"
    return resource


# ItemsTable is retained on deletion (as in template.yaml); SessionsTable is not.
PR_TEMPLATE = {"Resources": {"ItemsTable": _table_resource(True), "SessionsTable": _table_resource(False)}}
TOPIC_TEMPLATE = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}


def _create_stack(session: Any, name: str = STACK, template: dict[str, Any] = PR_TEMPLATE) -> None:
    session.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


def _live_stacks(session: Any) -> set[str]:
    summaries = session.client("cloudformation").list_stacks()["StackSummaries"]
    return {s["StackName"] for s in summaries if s["StackStatus"] != "DELETE_COMPLETE"}


def _tables(session: Any) -> list[str]:
    return list(session.client("dynamodb").list_tables()["TableNames"])


def report_statuses(session: Any, statuses: list[str]) -> None:
    """DescribeStacks answers these statuses, one a call, before the stack's own."""

    def rewrite(parsed: dict[str, Any], **_: Any) -> None:
        if statuses and parsed.get("Stacks"):
            parsed["Stacks"][0]["StackStatus"] = statuses.pop(0)

    session.events.register("after-call.cloudformation.DescribeStacks", rewrite)


def record_deletes(session: Any, statuses: list[str]) -> list[dict[str, Any]]:
    """Each DeleteStack's parameters, with how many injected statuses were still to be answered."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append({**params, "statuses_left": len(statuses)})

    session.events.register("provide-client-params.cloudformation.DeleteStack", record)
    return calls


def _accepted() -> tuple[AWSResponse, dict[str, Any]]:
    """A successful answer that skips moto (a before-call hook's response)."""
    return AWSResponse("https://cloudformation.us-east-1.amazonaws.com/", 200, {}, None), {}


@pytest.mark.parametrize(
    "status",
    [
        "CREATE_IN_PROGRESS",
        "ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
        "IMPORT_IN_PROGRESS",
        "DELETE_IN_PROGRESS",
    ],
)
def test_cleanup_waits_for_a_stack_in_progress_then_deletes_it(session: Any, status: str) -> None:
    _create_stack(session)
    statuses = [status] * 3
    report_statuses(session, statuses)
    deletes = record_deletes(session, statuses)
    deleted = pr_stack.cleanup(session, STACK, timeout=5, poll_seconds=0.01)
    assert [call["statuses_left"] for call in deletes] == [0]  # one delete, once the stack was at rest
    assert _live_stacks(session) == set()
    assert _tables(session) == []
    assert [entry.split(" ")[0] for entry in deleted] == ["AWS::DynamoDB::Table"]


def test_an_update_in_progress_is_cancelled_then_the_stack_deleted(session: Any) -> None:
    _create_stack(session)
    statuses = ["UPDATE_IN_PROGRESS"] * 100  # until it is cancelled
    cancels: list[str] = []

    def cancel(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:  # moto has no CancelUpdateStack
        cancels.append(STACK)
        statuses[:] = ["UPDATE_ROLLBACK_IN_PROGRESS"] * 2  # then at rest (moto's own status)
        return _accepted()

    session.events.register("before-call.cloudformation.CancelUpdateStack", cancel)
    report_statuses(session, statuses)
    deletes = record_deletes(session, statuses)
    pr_stack.cleanup(session, STACK, timeout=5, poll_seconds=0.01)
    assert cancels == [STACK]
    assert [call["statuses_left"] for call in deletes] == [0]
    assert _live_stacks(session) == set()
    assert _tables(session) == []


def test_a_delete_refused_for_an_operation_in_progress_is_made_again(session: Any) -> None:
    _create_stack(session)
    message = f"Stack [{STACK}] cannot be deleted while in status UPDATE_IN_PROGRESS"
    refusals = [ClientError({"Error": {"Code": "ValidationError", "Message": message}}, "DeleteStack")]

    def refuse(**_: Any) -> None:
        if refusals:
            raise refusals.pop()

    session.events.register("before-call.cloudformation.DeleteStack", refuse)
    deletes = record_deletes(session, [])
    pr_stack.cleanup(session, STACK, timeout=5, poll_seconds=0.01)
    assert len(deletes) == 2
    assert _live_stacks(session) == set()
    assert _tables(session) == []


def test_a_failed_delete_is_made_again_retaining_what_failed_and_leaves_nothing(session: Any) -> None:
    _create_stack(session)
    statuses: list[str] = []
    first_delete = [True]

    def fail_first_delete(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not first_delete:
            return None  # to moto
        first_delete.clear()
        statuses.append("DELETE_FAILED")  # CloudFormation could not delete SessionsTable
        return _accepted()

    def sessions_table_failed(parsed: dict[str, Any], **_: Any) -> None:
        for summary in parsed.get("StackResourceSummaries", []):
            if summary["LogicalResourceId"] == "SessionsTable" and statuses == []:
                summary["ResourceStatus"] = "DELETE_FAILED"

    session.events.register("before-call.cloudformation.DeleteStack", fail_first_delete)
    session.events.register("after-call.cloudformation.ListStackResources", sessions_table_failed)
    report_statuses(session, statuses)
    deletes = record_deletes(session, statuses)
    pr_stack.cleanup(session, STACK, timeout=5, poll_seconds=0.01)
    assert [call.get("RetainResources") for call in deletes] == [None, ["SessionsTable"]]
    assert _live_stacks(session) == set()
    assert _tables(session) == []  # the retained items table and the table retained on the retry


def test_a_stack_that_never_comes_to_rest_fails_naming_it_and_its_state(session: Any) -> None:
    _create_stack(session)
    statuses = ["UPDATE_ROLLBACK_IN_PROGRESS"] * 1000
    report_statuses(session, statuses)
    deletes = record_deletes(session, statuses)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=f"stack {STACK} is still UPDATE_ROLLBACK_IN_PROGRESS"):
        pr_stack.cleanup(session, STACK, timeout=0.1, poll_seconds=0.01)
    assert time.monotonic() - started < 1
    assert deletes == []
    assert _live_stacks(session) == {STACK}


def test_a_stack_in_review_is_deleted_without_waiting(session: Any) -> None:
    """A change set created and never executed: DeleteStack accepts REVIEW_IN_PROGRESS."""
    _create_stack(session)
    statuses = ["REVIEW_IN_PROGRESS"] * 1000
    report_statuses(session, statuses)
    deletes = record_deletes(session, statuses)
    pr_stack.cleanup(session, STACK, timeout=0, poll_seconds=60)  # a wait would fail at once
    assert len(deletes) == 1
    assert _live_stacks(session) == set()


def _role(session: Any, name: str) -> None:
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}}]}
    session.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))


def _roles(session: Any) -> set[str]:
    return {role["RoleName"] for role in session.client("iam").list_roles()["Roles"]}


def _log_groups(session: Any) -> set[str]:
    return {group["logGroupName"] for group in session.client("logs").describe_log_groups()["logGroups"]}


def _queues(session: Any) -> set[str]:
    urls = session.client("sqs").list_queues().get("QueueUrls", [])
    return {url.rsplit("/", 1)[-1] for url in urls}


def _leave(session: Any, tables: list[str], roles: list[str], groups: list[str], queues: list[str]) -> None:
    """Resources as a stack, its updates or the probe leave them behind."""
    for name in tables:
        _table(session, name, protected=False)
    for name in roles:
        _role(session, name)
    for name in groups:
        session.client("logs").create_log_group(logGroupName=name)
    for name in queues:
        session.client("sqs").create_queue(QueueName=name)


def test_cleanup_also_deletes_what_is_named_after_the_stack(session: Any) -> None:
    """A table and a role replaced under UpdateReplacePolicy: Retain, log groups, the probe's queue."""
    _create_stack(session)
    _leave(
        session,
        tables=[f"{STACK}-ItemsTable-REPLACED", "items-api-pr-70-ItemsTable-A"],
        roles=[f"{STACK}-ApiGatewayLoggingRole-REPLACED", "items-api-pr-70-ApiGatewayLoggingRole-A"],
        groups=[
            f"/aws/lambda/{STACK}-upgrade",
            f"{STACK}-ApiAccessLogGroup-A",
            f"/aws/vendedlogs/apigateway/{STACK}/http-api-access",
            "/aws/lambda/items-api-pr-70-api",
            "/aws/vendedlogs/apigateway/items-api-pr-70/http-api-access",
        ],
        queues=[f"{STACK}-alarm-probe", "items-api-pr-70-alarm-probe"],
    )
    pr_stack.cleanup(session, STACK, timeout=5, poll_seconds=0.01)
    assert _live_stacks(session) == set()
    assert _tables(session) == ["items-api-pr-70-ItemsTable-A"]
    assert _roles(session) == {"items-api-pr-70-ApiGatewayLoggingRole-A"}
    assert _log_groups(session) == {
        "/aws/lambda/items-api-pr-70-api",
        "/aws/vendedlogs/apigateway/items-api-pr-70/http-api-access",
    }
    assert _queues(session) == {"items-api-pr-70-alarm-probe"}


def test_sweep_cleans_old_pull_request_stacks_and_orphans_and_nothing_else(session: Any) -> None:
    _create_stack(session, "items-api-pr-7")  # old: deleted with its tables
    _create_stack(session, "items-api-pr-10", TOPIC_TEMPLATE)  # updated an hour ago: kept
    for name in ("items-api-prod", "items-api-staging", "items-api-pr-7x", "other-items-api-pr-1"):
        _create_stack(session, name, TOPIC_TEMPLATE)
    _table(session, "items-api-pr-1-ItemsTable-P", protected=True)  # skipped, reported
    _leave(
        session,
        tables=[
            "items-api-pr-8-ItemsTable-A",  # orphan: deleted
            "items-api-pr-10-ItemsTable-A",  # its stack lives: kept
            "items-api-prod-ItemsTable-A",
            "items-api-pr-7x-ItemsTable-A",
            "other-items-api-pr-1-ItemsTable-A",
        ],
        roles=[
            "items-api-pr-8-ApiGatewayLoggingRole-A",
            "items-api-prod-Role-A",
            "other-items-api-pr-1-Role-A",
        ],
        groups=[
            "/aws/lambda/items-api-pr-8-upgrade",
            "/aws/vendedlogs/apigateway/items-api-pr-8/websocket-access",
            "/aws/lambda/items-api-prod-api",
            "/aws/vendedlogs/apigateway/items-api-prod/http-api-access",
            "/aws/vendedlogs/apigateway/items-api-pr-8x/http-api-access",
            "items-api-prod-Logs-A",
        ],
        queues=["items-api-pr-8-alarm-probe", "items-api-prod-alarm-probe", "items-api-pr-7x-alarm-probe"],
    )
    before = (
        _live_stacks(session),
        _tables(session),
        _roles(session),
        _log_groups(session),
        _queues(session),
    )

    # Today everything is young: nothing is touched.
    assert pr_stack.sweep(session, poll_seconds=0.01) == ([], [])
    assert (
        _live_stacks(session),
        _tables(session),
        _roles(session),
        _log_groups(session),
        _queues(session),
    ) == before

    # A day and an hour later, with items-api-pr-10 updated an hour before.
    later = datetime.now(UTC) + timedelta(hours=25)

    def recently_updated(parsed: dict[str, Any], **_: Any) -> None:
        for summary in parsed.get("StackSummaries", []):
            if summary["StackName"] == "items-api-pr-10":
                summary["LastUpdatedTime"] = later - timedelta(hours=1)

    session.events.register("after-call.cloudformation.ListStacks", recently_updated)
    deleted, failures = pr_stack.sweep(session, now=later, poll_seconds=0.01)
    assert "stack items-api-pr-7" in deleted
    assert {entry for entry in deleted if "items-api-pr-8" in entry} == {
        "AWS::DynamoDB::Table items-api-pr-8-ItemsTable-A",
        "AWS::IAM::Role items-api-pr-8-ApiGatewayLoggingRole-A",
        "AWS::Logs::LogGroup /aws/lambda/items-api-pr-8-upgrade",
        "AWS::Logs::LogGroup /aws/vendedlogs/apigateway/items-api-pr-8/websocket-access",
        "AWS::SQS::Queue https://sqs.us-east-1.amazonaws.com/123456789012/items-api-pr-8-alarm-probe",
    }
    protected, lookalike = sorted(failures)
    assert "items-api-pr-1-ItemsTable-P" in protected
    assert "deletion protection" in protected
    assert lookalike.startswith("stack items-api-pr-7x: named like a pull-request stack")  # reported, kept
    assert _live_stacks(session) == before[0] - {"items-api-pr-7"}
    assert set(_tables(session)) == {
        "items-api-pr-1-ItemsTable-P",
        "items-api-pr-10-ItemsTable-A",
        "items-api-pr-7x-ItemsTable-A",
        "items-api-prod-ItemsTable-A",
        "other-items-api-pr-1-ItemsTable-A",
    }
    assert _roles(session) == {"items-api-prod-Role-A", "other-items-api-pr-1-Role-A"}
    assert _log_groups(session) == {
        "/aws/lambda/items-api-prod-api",
        "/aws/vendedlogs/apigateway/items-api-prod/http-api-access",
        "/aws/vendedlogs/apigateway/items-api-pr-8x/http-api-access",
        "items-api-prod-Logs-A",
    }
    assert _queues(session) == {"items-api-prod-alarm-probe", "items-api-pr-7x-alarm-probe"}


def test_the_sweep_command_tries_everything_then_fails(
    session: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _table(session, "items-api-pr-1-ItemsTable-P", protected=True)  # listed first
    _table(session, "items-api-pr-8-ItemsTable-A", protected=False)
    assert pr_stack.main(["sweep", "--older-than-hours", "0"]) == 1
    out, err = capsys.readouterr()
    assert "deleted AWS::DynamoDB::Table items-api-pr-8-ItemsTable-A" in out
    assert "items-api-pr-1-ItemsTable-P" in err
    assert _tables(session) == ["items-api-pr-1-ItemsTable-P"]
    assert pr_stack.main(["sweep"]) == 0  # a young protected table is not even looked at
