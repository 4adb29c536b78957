"""Lambda entry point: the schedule's runs of the backfill, and the deploy's custom resource."""

import json
import os
import urllib.request
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from items_core.aws_clients import create_client
from items_core.layout import BACKFILLING, STALE
from upgrade.backfill import Backfill, Progress, reset

SERVICE = "items-upgrade"
# A run stops working this long before its timeout: enough for its last row (a read and a
# write) and the position save, each call at its worst (template.yaml's RetryBudget).
RESERVE_SECONDS = 25.0
MAX_ATTEMPTS = 3
CONNECT_TIMEOUT = 0.5
READ_TIMEOUT = 1.0
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "ItemsApi", service=SERVICE)


def _client() -> Any:
    return create_client(
        "dynamodb",
        max_attempts=MAX_ATTEMPTS,
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        endpoint_url=os.environ.get("DYNAMODB_ENDPOINT_URL") or None,
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A scheduled run, or CloudFormation's request."""
    if "RequestType" in event:
        return _custom_resource(event)
    return run(context.get_remaining_time_in_millis() / 1000 - RESERVE_SECONDS)


def run(seconds: float) -> dict[str, Any]:
    """One run of the backfill: at most `seconds` of work, then the state."""
    table = os.environ["TABLE_NAME"]
    budget = float(os.environ.get("BACKFILL_UNITS_PER_SECOND", "50"))

    def on_page(progress: Progress) -> None:
        logger.info("backfill page", extra={"scanned": progress.scanned, "repaired": progress.repaired})

    progress = Backfill(_client(), table, units_per_second=budget).run(seconds, on_page)
    summary = {
        "state": progress.state,
        "scanned": progress.scanned,
        "repaired": progress.repaired,
        "units": round(progress.units, 1),
    }
    pending = progress.state != "complete"
    if pending or progress.pages:
        logger.info("backfill run", extra=summary)
    # Every run says whether a pass is pending; while one is, how far it got. The stall alarm
    # fires when a pass is pending (or no run reported at all) and nothing was scanned.
    metrics.add_metric(name="BackfillPending", unit=MetricUnit.Count, value=int(pending))
    if pending or progress.pages:
        metrics.add_metric(name="BackfillRowsScanned", unit=MetricUnit.Count, value=progress.scanned)
        metrics.add_metric(name="BackfillRowsRepaired", unit=MetricUnit.Count, value=progress.repaired)
    metrics.flush_metrics()
    return summary


def _custom_resource(event: dict[str, Any]) -> dict[str, Any]:
    table = os.environ["TABLE_NAME"]
    answer: dict[str, Any] = {
        "Status": "SUCCESS",
        "PhysicalResourceId": event.get("PhysicalResourceId") or f"{table}-layout",
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
    }
    # Create and Update (a deploy of this layout, on the way forward) start a pass; Delete (a
    # rollback past this release, or the stack's deletion) marks the data as not to be trusted.
    state = STALE if event["RequestType"] == "Delete" else BACKFILLING
    client = _client()
    try:
        generation = reset(client, table, state=state)
        logger.info("backfill reset", extra={"request": event["RequestType"], "generation": generation})
    except client.exceptions.ResourceNotFoundException:
        if event["RequestType"] != "Delete":
            answer.update(Status="FAILED", Reason=f"the items table {table} does not exist")
        # Deleting a stack whose table is already gone: nothing to mark.
    except Exception as error:  # CloudFormation must hear back whatever happened, or the stack waits an hour
        logger.exception("backfill reset failed", extra={"request": event["RequestType"]})
        answer.update(Status="FAILED", Reason=f"could not reset the layout row of {table}: {error}"[:500])
    body = json.dumps(answer).encode()
    request = urllib.request.Request(  # noqa: S310 - CloudFormation's presigned https URL
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        response.read()
    return answer
