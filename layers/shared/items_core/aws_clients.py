"""botocore clients as every function creates them: bounded attempts and timeouts, no boto3."""

import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.session import Session

# The first retry of a conflicting write waits up to this long, each further one twice as
# long: a conflict lasts as long as another request's transaction (milliseconds), far less
# than the throttling backoff the retry budget allows for every attempt.
CONFLICT_BACKOFF_SECONDS = 0.05


def botocore_session() -> "Session":
    """A botocore session (credentials and region from the environment, as Lambda sets them)."""
    # Not boto3: it only wraps botocore here, and importing it also imports s3transfer (cold start).
    import botocore.session

    return botocore.session.get_session()


def create_client(
    service: str,
    *,
    max_attempts: int,
    connect_timeout: float,
    read_timeout: float,
    endpoint_url: str | None = None,
    validate_params: bool = True,
    session: "Session | None" = None,
) -> Any:
    """A client whose every call makes at most `max_attempts` attempts (botocore's standard retry mode)."""
    from botocore.config import Config

    config = Config(
        parameter_validation=validate_params,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    client = (session or botocore_session()).create_client(service, endpoint_url=endpoint_url, config=config)
    if service == "dynamodb":  # botocore does not retry write conflicts: this does, within the attempts
        client.meta.events.register("needs-retry.dynamodb", _conflict_retry(max_attempts))
    return client


def worst_case_call_seconds(max_attempts: int, connect_timeout: float, read_timeout: float) -> float:
    """The longest one call can take: every attempt times out, with botocore's longest backoff between."""
    # botocore's standard mode sleeps rand(0, 1) * min(2 ** i, 20) s before retry i + 1 of a throttled call.
    backoff = sum(min(2.0**i, 20.0) for i in range(max_attempts - 1))
    return max_attempts * (connect_timeout + read_timeout) + backoff


def _conflict_retry(max_attempts: int) -> Any:
    """botocore's needs-retry handler for write conflicts: the delay before the next attempt, or None."""
    from items_core.dynamodb_errors import retry_on_conflict

    def needs_retry(response: Any = None, attempts: int = 1, **_: Any) -> float | None:
        if response is None or attempts >= max_attempts:
            return None
        parsed: dict[str, Any] = response[1]
        if "Error" not in parsed or not retry_on_conflict(parsed):
            return None
        return float(random.random() * CONFLICT_BACKOFF_SECONDS * 2 ** (attempts - 1))  # noqa: S311 - jitter

    return needs_retry
