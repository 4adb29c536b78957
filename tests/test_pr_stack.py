"""devtools/pr_stack.py: the pull-request stack's alarm-delivery probe and cleanup, against moto."""

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devtools import pr_stack

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


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.session.Session()


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
    [topic] = session.client("sns").list_topics()["Topics"]
    assert (
        session.client("sns").list_subscriptions_by_topic(TopicArn=topic["TopicArn"])["Subscriptions"] == []
    )
    [alarm] = session.client("cloudwatch").describe_alarms()["MetricAlarms"]
    assert alarm["StateValue"] == "OK"  # put back


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
    assert kinds <= {"AWS::DynamoDB::Table", "AWS::IAM::Role"}, kinds


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
