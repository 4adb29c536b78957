"""botocore clients as every function creates them: bounded attempts and timeouts, no boto3.

botocore directly: boto3 adds only a wrapper here, and importing it also
imports s3transfer (about 20 ms of every cold start).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.session import Session


def botocore_session() -> "Session":
    """A botocore session (credentials and region from the environment, as Lambda sets them)."""
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
    return (session or botocore_session()).create_client(service, endpoint_url=endpoint_url, config=config)
