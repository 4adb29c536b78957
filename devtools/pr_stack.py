"""Pull-request stacks (items-api-pr-<number>): the alarm-delivery probe, and a cleanup that leaves nothing.

Used by the pipeline (.github/workflows/ci-cd.yml, job pr-stack) with the pipeline role's
credentials:

    python -m devtools.pr_stack alarm-probe items-api-pr-42   # does an alarm reach a subscriber?
    python -m devtools.pr_stack cleanup items-api-pr-42       # delete the stack and what it retains

The probe subscribes a temporary SQS queue to the stack's alarm topic, sets one of the stack's
alarms to ALARM (`SetAlarmState`), and waits for CloudWatch's notification to arrive through
SNS (encrypted with the stack's key) in the queue; then it puts the alarm back and removes the
queue. The cleanup deletes the stack, then the resources the template retains on deletion
(`DeletionPolicy: Retain`: the items table, whose deletion protection is off in pull-request
stacks through `EphemeralStack=true`). It refuses any stack not named items-api-pr-<number>.
"""

import argparse
import json
import re
import sys
import time
from typing import Any

import boto3

from devtools.template import load_template

PR_STACK = re.compile(r"^items-api-pr-\d+$")
PROBE_SECONDS = 180


class NotAPullRequestStack(ValueError):
    """Only pull-request stacks may be deleted by this tool."""


def _check_name(stack: str) -> None:
    if not PR_STACK.fullmatch(stack):
        raise NotAPullRequestStack(f"{stack!r} is not a pull-request stack (items-api-pr-<number>)")


def retained_logical_ids(template: dict[str, Any] | None = None) -> dict[str, str]:
    """Logical id -> type of every resource the template keeps when its stack is deleted."""
    template = template or load_template()
    return {
        name: resource["Type"]
        for name, resource in template["Resources"].items()
        if resource.get("DeletionPolicy") == "Retain"
    }


def _physical_ids(cloudformation: Any, stack: str, logical_ids: dict[str, str]) -> list[tuple[str, str]]:
    found = []
    paginator = cloudformation.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=stack):
        for summary in page["StackResourceSummaries"]:
            if summary["LogicalResourceId"] in logical_ids and summary.get("PhysicalResourceId"):
                found.append((summary["ResourceType"], summary["PhysicalResourceId"]))
    return found


def delete_retained(session: Any, resources: list[tuple[str, str]]) -> list[str]:
    """Delete what the stack left behind; returns what was deleted. Unknown types stop the cleanup."""
    deleted = []
    for kind, physical_id in resources:
        if kind == "AWS::DynamoDB::Table":
            dynamodb = session.client("dynamodb")
            try:
                table = dynamodb.describe_table(TableName=physical_id)["Table"]
            except dynamodb.exceptions.ResourceNotFoundException:
                continue
            if table.get("DeletionProtectionEnabled"):
                raise RuntimeError(
                    f"table {physical_id} has deletion protection: this is not a pull-request stack's table "
                    "(EphemeralStack=true turns it off); refusing to remove it"
                )
            dynamodb.delete_table(TableName=physical_id)
            dynamodb.get_waiter("table_not_exists").wait(TableName=physical_id, WaiterConfig={"Delay": 5})
        elif kind == "AWS::IAM::Role":
            iam = session.client("iam")
            for attached in iam.list_attached_role_policies(RoleName=physical_id)["AttachedPolicies"]:
                iam.detach_role_policy(RoleName=physical_id, PolicyArn=attached["PolicyArn"])
            for name in iam.list_role_policies(RoleName=physical_id)["PolicyNames"]:
                iam.delete_role_policy(RoleName=physical_id, PolicyName=name)
            iam.delete_role(RoleName=physical_id)
        else:
            raise RuntimeError(
                f"no cleanup for retained {kind} {physical_id}: add one to devtools/pr_stack.py"
            )
        deleted.append(f"{kind} {physical_id}")
    return deleted


def cleanup(session: Any, stack: str) -> list[str]:
    """Delete a pull-request stack and everything it retains. A stack that is gone is no error."""
    _check_name(stack)
    cloudformation = session.client("cloudformation")
    try:
        retained = _physical_ids(cloudformation, stack, retained_logical_ids())
    except cloudformation.exceptions.ClientError as error:
        if "does not exist" not in str(error):
            raise
        return []
    cloudformation.delete_stack(StackName=stack)
    cloudformation.get_waiter("stack_delete_complete").wait(StackName=stack, WaiterConfig={"Delay": 10})
    return delete_retained(session, retained)


def _output(cloudformation: Any, stack: str, key: str) -> str:
    [described] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    return str(next(o["OutputValue"] for o in described.get("Outputs", []) if o["OutputKey"] == key))


def alarm_probe(session: Any, stack: str, timeout: float = PROBE_SECONDS, poll_seconds: float = 5) -> str:
    """Set one alarm of the stack to ALARM and wait for its notification in a temporary queue."""
    _check_name(stack)
    cloudformation, sns, sqs = (session.client(name) for name in ("cloudformation", "sns", "sqs"))
    cloudwatch = session.client("cloudwatch")
    topic = _output(cloudformation, stack, "AlarmTopicArn")
    # One of this stack's alarms (named <stack>-<logical id>-<suffix>) that notify the topic.
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix=f"{stack}-", ActionPrefix=topic)["MetricAlarms"]
    if not alarms:
        raise LookupError(f"no alarm of {stack} notifies {topic}")
    alarm = str(alarms[0]["AlarmName"])
    queue_url = sqs.create_queue(QueueName=f"{stack}-alarm-probe")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    subscription = sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True
    )["SubscriptionArn"]
    try:
        cloudwatch.set_alarm_state(
            AlarmName=alarm, StateValue="ALARM", StateReason="alarm-delivery probe (pull request)"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=int(min(poll_seconds, 20)))
            for message in messages.get("Messages", []):
                if alarm in message["Body"]:
                    return alarm
        raise TimeoutError(f"no notification of {alarm} reached a subscriber of {topic} in {timeout:g} s")
    finally:
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="alarm-delivery probe done")
        sns.unsubscribe(SubscriptionArn=subscription)
        sqs.delete_queue(QueueUrl=queue_url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=["alarm-probe", "cleanup"])
    parser.add_argument("stack")
    arguments = parser.parse_args()
    session = boto3.session.Session()
    if arguments.command == "alarm-probe":
        print(f"alarm {alarm_probe(session, arguments.stack)} notified the topic's subscriber")
    else:
        for deleted in cleanup(session, arguments.stack):
            print(f"deleted retained {deleted}")
        print(f"stack {arguments.stack} and what it retained are gone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
