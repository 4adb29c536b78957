"""Per-owner request rates across containers: allowances leased in DynamoDB, and what each request costs."""

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import Request

from app.blocking import run_blocking
from items_core.models import MAX_TAGS

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Kind = Literal["reads", "writes", "keys"]
WINDOW_SECONDS = 10
WINDOWS: dict[Kind, int] = {"reads": WINDOW_SECONDS, "writes": WINDOW_SECONDS, "keys": 3600}
_MAX_LEASE_SHARE = 16  # a lease is at most 1/16 of a window's allowance
_MAX_OWNERS = 10_000  # leases a container remembers before it forgets those of past windows


def clock() -> float:
    """The time windows are counted in (tests move it)."""
    return time.time()


class RateLimited(Exception):
    """The owner has used this window's allowance: 429, with the seconds until the next window."""

    def __init__(self, kind: Kind, allowance: int, retry_after: int) -> None:
        if kind == "keys":
            message = (
                f"Too many Idempotency-Key requests: this owner may send {allowance} an hour "
                f"(each keeps a record for 24 h); retry after {retry_after} s"
            )
        else:
            unit = "reads" if kind == "reads" else "write units"
            message = (
                f"Too many requests: this owner may make {allowance // WINDOW_SECONDS} {unit} a second "
                f"(averaged over {WINDOW_SECONDS} s); retry after {retry_after} s"
            )
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Lease:
    window: int
    left: int = 0  # leased, not yet spent
    size: int = 0  # the last lease's size, which the next one in this window doubles
    owed: int = 0  # spent on credit, added to the next lease
    refused: int = 0  # the smallest cost a lease was refused for: no more calls for as much this window


class OwnerRates:
    """Leases of each owner's allowance for this container (thread-safe)."""

    def __init__(
        self,
        client: "Callable[[], DynamoDBClient]",
        table_name: str,
        per_window: dict[Kind, int],
    ) -> None:
        self._make_client = client
        self._table = table_name
        self._per_window = per_window  # each kind's allowance per window of WINDOWS[kind] seconds
        self._leases: dict[tuple[str, Kind], _Lease] = {}
        self._lock = threading.Lock()

    def limited(self, kind: Kind) -> bool:
        """Whether requests of this kind are limited (0 a second: not)."""
        return self._per_window.get(kind, 0) > 0

    def take(self, owner: str, kind: Kind, cost: int = 1) -> None:
        """Spend `cost` of the owner's allowance of `kind`, or raise RateLimited."""
        if not self.limited(kind):
            return
        now = clock()
        seconds = WINDOWS[kind]
        window = int(now // seconds)
        allowance = self._per_window[kind]
        largest = max(1, allowance // _MAX_LEASE_SHARE)
        cost = max(1, min(cost, allowance))  # one write larger than a window's allowance may go alone
        retry_after = max(1, math.ceil((window + 1) * seconds - now))
        with self._lock:
            lease = self._leases.get((owner, kind))
            if lease is None or lease.window != window:
                if len(self._leases) >= _MAX_OWNERS:  # forget the leases of windows that are over
                    self._leases = {
                        k: v for k, v in self._leases.items() if v.window == int(now // WINDOWS[k[1]])
                    }
                if cost <= largest:  # the window's first request here goes on credit: no call
                    self._leases[(owner, kind)] = _Lease(window, owed=cost)
                    return
                lease = self._leases[(owner, kind)] = _Lease(window)
            if lease.left >= cost:
                lease.left -= cost
                return
            if lease.refused and cost >= lease.refused:
                raise RateLimited(kind, allowance, retry_after)
            # Each lease doubles the last: a container's unspent lease, which no other can use, never exceeds
            # what it spent, so the owner gets at least half its allowance however many containers serve it.
            size = max(cost, min(2 * lease.size or 1, largest))
            owed, lease.owed = lease.owed, 0  # this call counts them; concurrent requests do not again
        if not self._lease(owner, kind, window, owed + size, allowance):
            size = cost if size > cost and self._lease(owner, kind, window, owed + cost, allowance) else 0
        with self._lock:
            if not size:
                lease.owed += owed  # still to be counted by a later lease
                lease.refused = min(lease.refused or cost, cost)
                raise RateLimited(kind, allowance, retry_after)
            lease.size = size
            lease.left += size - cost  # added: what was left, or leased meanwhile, is kept

    def _lease(self, owner: str, kind: Kind, window: int, size: int, allowance: int) -> bool:
        """Lease `size` of the window's allowance: False when it does not fit (True when DynamoDB fails)."""
        try:
            self._make_client().update_item(
                TableName=self._table,
                Key={"pk": {"S": f"rate {kind} {window} {owner}"}},
                UpdateExpression="ADD granted :size SET expires_at = :expires",
                ConditionExpression="attribute_not_exists(granted) OR granted <= :room",
                ExpressionAttributeValues={
                    ":size": {"N": str(size)},
                    ":room": {"N": str(allowance - size)},
                    ":expires": {"N": str((window + 2) * WINDOWS[kind])},
                },
            )
        except ClientError as error:
            # Throttled or failing: let the request through; a failing limiter must not take the service down.
            return error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException"
        except BotoCoreError:
            return True
        return True


def write_units(body: bytes, tags: int) -> int:
    """A write's estimated cost in write units: its rows (the item and a copy per tag) x its KB."""
    return (1 + tags) * max(1, math.ceil(len(body) / 1024))


# A request's charge: made by the route class (app/routes/owner_route.py) before FastAPI reads
# the body; what it paid (request.state.write_units, .body_kb) is read back by rows_charge.
async def charge_request(rates: OwnerRates, request: Request, owner: str, body: bytes) -> None:
    """Spend the request's cost of the owner's allowance (a read, or a write's units), else RateLimited."""
    kind: Kind = "reads" if request.method == "GET" else "writes"  # HEAD is routed as GET (app/edge.py)
    if not rates.limited(kind):
        return
    cost = 1
    request.state.body_kb = max(1, math.ceil(len(body) / 1024))
    if kind == "writes" and body:
        try:
            document = await request.json()
        except ValueError:  # not JSON: FastAPI answers 422 next, having written nothing
            document = None
        tags = document.get("tags") if isinstance(document, dict) else None
        # More tags than an item may have is a 422 next: priced as the most a valid write costs.
        cost = write_units(body, min(len(tags), MAX_TAGS) if isinstance(tags, list) else 0)
    await run_blocking(rates.take, owner, kind, cost)  # RateLimited: a 429 (app/routes/errors.py)
    request.state.write_units = cost


def rows_charge(rates: OwnerRates, request: Request, owner: str) -> Callable[[int], None] | None:
    """The charge for a write's rows beyond those its body paid for, made before they are written (429)."""
    if not rates.limited("writes"):
        return None
    charged = getattr(request.state, "write_units", 1)
    kb = getattr(request.state, "body_kb", 1)

    def charge(rows: int) -> None:
        extra = rows * kb - charged
        if extra > 0:
            rates.take(owner, "writes", extra)

    return charge
