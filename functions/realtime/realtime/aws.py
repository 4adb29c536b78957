"""AWS clients, created once per container with bounded retries and timeouts."""

from functools import lru_cache
from typing import Any

from realtime.settings import get_settings, require


def _client(service: str, endpoint_url: str | None) -> Any:
    # botocore directly: boto3's wrapper also imports s3transfer (cold start).
    import botocore.session
    from botocore.config import Config

    settings = get_settings()
    config = Config(
        retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts},
        connect_timeout=settings.aws_timeout,
        read_timeout=settings.aws_timeout,
    )
    return botocore.session.get_session().create_client(service, endpoint_url=endpoint_url, config=config)


@lru_cache
def dynamodb() -> Any:
    """The DynamoDB client (connection records)."""
    return _client("dynamodb", get_settings().dynamodb_endpoint_url)


@lru_cache
def management_api() -> Any:
    """The API Gateway Management API of the WebSocket stage (posting to connections)."""
    url = require(get_settings().websocket_management_url, "WEBSOCKET_MANAGEMENT_URL")
    return _client("apigatewaymanagementapi", url)
