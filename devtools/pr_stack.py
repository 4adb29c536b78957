"""Pull-request stacks (items-api-pr-<number>): the alarm-delivery probe, a cleanup that leaves nothing."""

# python -m devtools.pr_stack alarm-probe items-api-pr-42   # does an alarm reach a subscriber?
# python -m devtools.pr_stack cleanup items-api-pr-42       # delete the stack and what it retains
# python -m devtools.pr_stack sweep --older-than-hours 24   # what cancelled or failed runs left

import argparse
import json
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from devtools.template import load_template

PR_STACK = re.compile(r"^items-api-pr-\d+$")
# What a pull-request stack's resources are named after: <stack>-<logical id>-<suffix>.
NAMED_AFTER_PR_STACK = re.compile(
    r"^(?:/aws/lambda/)?(items-api-pr-\d+)-|^/aws/vendedlogs/apigateway/(items-api-pr-\d+)/"
)
PROBE_SECONDS = 180
CLEANUP_SECONDS = 1200  # cancelling an update, its rollback and the delete, in the job's time
POLL_SECONDS = 10
DELETE_ATTEMPTS = 4  # a DELETE_FAILED needs a new DeleteStack
RETRIES = Config(retries={"mode": "standard", "max_attempts": 10})  # throttling, transient errors


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


def _delete_table(session: Any, name: str) -> bool:
    """Delete a table without deletion protection; False if it is gone already."""
    dynamodb = session.client("dynamodb", config=RETRIES)
    try:
        table = dynamodb.describe_table(TableName=name)["Table"]
    except dynamodb.exceptions.ResourceNotFoundException:
        return False
    if table.get("DeletionProtectionEnabled"):
        raise RuntimeError(
            f"table {name} has deletion protection: this is not a pull-request stack's table "
            "(EphemeralStack=true turns it off); refusing to remove it"
        )
    if table["TableStatus"] != "DELETING":
        dynamodb.delete_table(TableName=name)
    dynamodb.get_waiter("table_not_exists").wait(TableName=name, WaiterConfig={"Delay": 5})
    return True


def _delete_role(session: Any, name: str) -> bool:
    """Detach and delete a role's policies, then the role; False if it is gone already."""
    iam = session.client("iam", config=RETRIES)
    try:
        for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        iam.delete_role(RoleName=name)
    except iam.exceptions.NoSuchEntityException:
        return False
    return True


def _delete_log_group(session: Any, name: str) -> bool:
    """Delete a log group; False if it is gone already."""
    logs = session.client("logs", config=RETRIES)
    try:
        logs.delete_log_group(logGroupName=name)
    except logs.exceptions.ResourceNotFoundException:
        return False
    return True


def _delete_queue(session: Any, url: str) -> bool:
    """Delete a queue; False if it is gone already."""
    sqs = session.client("sqs", config=RETRIES)
    try:
        sqs.delete_queue(QueueUrl=url)
    except sqs.exceptions.QueueDoesNotExist:
        return False
    return True


DELETERS = {
    "AWS::DynamoDB::Table": _delete_table,
    "AWS::IAM::Role": _delete_role,
    "AWS::Logs::LogGroup": _delete_log_group,
    "AWS::SQS::Queue": _delete_queue,
}


def delete_retained(session: Any, resources: list[tuple[str, str]]) -> list[str]:
    """Delete what the stack left behind; returns what was deleted. Unknown types stop the cleanup."""
    deleted = []
    for kind, physical_id in resources:
        if kind.startswith("Custom::"):
            continue  # only an entry of the stack (LayoutUpgrade's Delete marks the items table, deleted too)
        if kind not in DELETERS:
            raise RuntimeError(
                f"no cleanup for retained {kind} {physical_id}: add one to devtools/pr_stack.py"
            )
        if DELETERS[kind](session, physical_id):
            deleted.append(f"{kind} {physical_id}")
    return deleted


def _describe(cloudformation: Any, stack: str) -> dict[str, Any] | None:
    """The stack, or None once it is gone."""
    try:
        [described] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        if "does not exist" not in str(error):
            raise
        return None
    return None if described["StackStatus"] == "DELETE_COMPLETE" else dict(described)


def _settle(cloudformation: Any, stack: str, deadline: float, poll_seconds: float) -> dict[str, Any] | None:
    """Wait for the stack to be gone or in a state DeleteStack accepts; an update in progress is cancelled."""
    while (described := _describe(cloudformation, stack)) is not None:
        status = described["StackStatus"]
        # A change set never executed (REVIEW_IN_PROGRESS) can be deleted; other *_IN_PROGRESS cannot.
        if status == "REVIEW_IN_PROGRESS" or not status.endswith("_IN_PROGRESS"):
            break
        if status == "UPDATE_IN_PROGRESS":
            try:
                cloudformation.cancel_update_stack(StackName=stack)  # then UPDATE_ROLLBACK_IN_PROGRESS
            except ClientError as error:
                if error.response["Error"]["Code"] != "ValidationError":  # it moved on: wait for it
                    raise
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"stack {stack} is still {status}: it never reached a state it can be deleted in"
            )
        time.sleep(poll_seconds)
    return described


def _failed_and_deletable(cloudformation: Any, stack: str) -> list[dict[str, Any]]:
    """Resources of a DELETE_FAILED stack that failed to delete and that delete_retained can remove."""
    return [
        summary
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack)
        for summary in page["StackResourceSummaries"]
        if summary["ResourceStatus"] == "DELETE_FAILED"
        and (summary["ResourceType"] in DELETERS or summary["ResourceType"].startswith("Custom::"))
    ]


def named_after_pr_stacks(session: Any) -> list[tuple[str, str, str, datetime]]:
    """(stack, type, physical id, created) of each table, role, log group and queue named after a PR stack."""
    found: list[tuple[str, str, str, datetime]] = []  # (name, type, physical id, created)
    dynamodb = session.client("dynamodb", config=RETRIES)
    for page in dynamodb.get_paginator("list_tables").paginate():
        for name in filter(NAMED_AFTER_PR_STACK.match, page["TableNames"]):
            try:
                created = dynamodb.describe_table(TableName=name)["Table"]["CreationDateTime"]
            except dynamodb.exceptions.ResourceNotFoundException:
                continue
            found.append((name, "AWS::DynamoDB::Table", name, created))
    for page in session.client("iam", config=RETRIES).get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            found.append((role["RoleName"], "AWS::IAM::Role", role["RoleName"], role["CreateDate"]))
    logs = session.client("logs", config=RETRIES)
    for prefix in ("/aws/lambda/items-api-pr-", "/aws/vendedlogs/apigateway/items-api-pr-", "items-api-pr-"):
        for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix):
            for group in page["logGroups"]:
                created = datetime.fromtimestamp(group["creationTime"] / 1000, UTC)  # epoch ms
                found.append((group["logGroupName"], "AWS::Logs::LogGroup", group["logGroupName"], created))
    sqs = session.client("sqs", config=RETRIES)
    for page in sqs.get_paginator("list_queues").paginate(QueueNamePrefix="items-api-pr-"):
        for url in page.get("QueueUrls", []):
            try:
                attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["CreatedTimestamp"])
            except sqs.exceptions.QueueDoesNotExist:
                continue
            created = datetime.fromtimestamp(float(attributes["Attributes"]["CreatedTimestamp"]), UTC)
            found.append((url.rsplit("/", 1)[-1], "AWS::SQS::Queue", url, created))
    return [
        (match[1] or match[2], kind, physical_id, created)
        for name, kind, physical_id, created in found
        if (match := NAMED_AFTER_PR_STACK.match(name))
    ]


def cleanup(
    session: Any, stack: str, timeout: float = CLEANUP_SECONDS, poll_seconds: float = POLL_SECONDS
) -> list[str]:
    """Delete a pull-request stack and everything it leaves. A stack that is gone is no error."""
    _check_name(stack)
    cloudformation = session.client("cloudformation", config=RETRIES)
    deadline = time.monotonic() + timeout
    retained: list[tuple[str, str]] = []
    attempts = 0
    while (described := _settle(cloudformation, stack, deadline, poll_seconds)) is not None:
        status = described["StackStatus"]
        if attempts == DELETE_ATTEMPTS:
            reason = described.get("StackStatusReason", "no reason given")
            raise RuntimeError(f"stack {stack} is still {status} after {attempts} deletes: {reason}")
        if attempts == 0:
            retained = _physical_ids(cloudformation, stack, retained_logical_ids())
        # RetainResources is only for a DELETE_FAILED stack: what failed and we can delete, we do.
        failed = _failed_and_deletable(cloudformation, stack) if status == "DELETE_FAILED" else []
        keep = {"RetainResources": [f["LogicalResourceId"] for f in failed]} if failed else {}
        attempts += 1
        try:
            cloudformation.delete_stack(StackName=stack, **keep)
        except ClientError as error:
            if "cannot be deleted while in status" not in str(error):
                raise
            time.sleep(poll_seconds)  # an operation started since we looked: wait for it again
            continue
        retained += [
            (f["ResourceType"], f["PhysicalResourceId"]) for f in failed if f.get("PhysicalResourceId")
        ]
    # Named after the stack but not in it: a table or role replaced under UpdateReplacePolicy: Retain,
    # a log group a last invocation recreated, the probe's queue.
    named = [
        (kind, physical_id)
        for owner, kind, physical_id, _ in named_after_pr_stacks(session)
        if owner == stack
    ]
    return delete_retained(session, retained + [item for item in named if item not in retained])


def _last_change(summary: dict[str, Any]) -> datetime:
    """When the stack was last created, updated or asked to be deleted."""
    changed: datetime = max(
        summary[key] for key in ("CreationTime", "LastUpdatedTime", "DeletionTime") if key in summary
    )
    return changed


def _live_pr_stacks(cloudformation: Any) -> dict[str, datetime]:
    """Pull-request stacks that exist (in any state), with their last change."""
    return {
        summary["StackName"]: _last_change(summary)
        for page in cloudformation.get_paginator("list_stacks").paginate()
        for summary in page["StackSummaries"]
        if PR_STACK.fullmatch(summary["StackName"]) and summary["StackStatus"] != "DELETE_COMPLETE"
    }


def sweep(
    session: Any,
    older_than: timedelta = timedelta(hours=24),
    now: datetime | None = None,
    timeout: float = CLEANUP_SECONDS,
    poll_seconds: float = POLL_SECONDS,
) -> tuple[list[str], list[str]]:
    """Clean up PR stacks and what is named after gone ones, older than older_than: (deleted, failures)."""
    cutoff = (now or datetime.now(UTC)) - older_than
    cloudformation = session.client("cloudformation", config=RETRIES)
    deleted: list[str] = []
    failures: list[str] = []
    for stack, changed in sorted(_live_pr_stacks(cloudformation).items()):
        if changed < cutoff:
            try:
                deleted += [f"stack {stack}", *cleanup(session, stack, timeout, poll_seconds)]
            except Exception as error:  # try every other one, then fail
                failures.append(f"stack {stack}: {error}")
    # The pull-request identity may create any items-api-pr-* stack (IAM has no digit pattern);
    # one not named items-api-pr-<number> is reported for a person to look at, never deleted.
    failures += [
        f"stack {summary['StackName']}: named like a pull-request stack but not items-api-pr-<number>; "
        "delete it by hand if it is one"
        for page in cloudformation.get_paginator("list_stacks").paginate()
        for summary in page["StackSummaries"]
        if summary["StackName"].startswith("items-api-pr-")
        and not PR_STACK.fullmatch(summary["StackName"])
        and summary["StackStatus"] != "DELETE_COMPLETE"
        and _last_change(summary) < cutoff
    ]
    live = _live_pr_stacks(cloudformation)
    for stack, kind, physical_id, created in named_after_pr_stacks(session):
        if stack not in live and created < cutoff:
            try:
                deleted += delete_retained(session, [(kind, physical_id)])
            except Exception as error:
                failures.append(f"{kind} {physical_id}: {error}")
    return deleted, failures


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
    # The subscription goes with the stack's topic when the stack is deleted: sns:Unsubscribe
    # has no resource type, and the pull-request identity gets nothing on "*" that changes anything.
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
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
        sqs.delete_queue(QueueUrl=queue_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("alarm-probe").add_argument("stack")
    commands.add_parser("cleanup").add_argument("stack")
    commands.add_parser("sweep").add_argument("--older-than-hours", type=float, default=24)
    arguments = parser.parse_args(argv)
    session = boto3.session.Session()
    if arguments.command == "alarm-probe":
        print(f"alarm {alarm_probe(session, arguments.stack)} notified the topic's subscriber")
    elif arguments.command == "cleanup":
        for deleted in cleanup(session, arguments.stack):
            print(f"deleted {deleted}")
        print(f"stack {arguments.stack} and what it left are gone")
    else:
        done, failures = sweep(session, timedelta(hours=arguments.older_than_hours))
        for deleted in done:
            print(f"deleted {deleted}")
        for failure in failures:
            print(f"could not clean up {failure}", file=sys.stderr)
        print(f"sweep: {len(done)} deleted, {len(failures)} could not be cleaned up")
        return 1 if failures else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
