"""AWS clients, created once per container with bounded retries and timeouts."""

from functools import lru_cache
from typing import Any

from items_core.aws_clients import create_client
from realtime.settings import get_settings, require


def _client(service: str, endpoint_url: str | None) -> Any:
    settings = get_settings()
    return create_client(
        service,
        max_attempts=settings.aws_max_attempts,
        connect_timeout=settings.aws_connect_timeout,
        read_timeout=settings.aws_read_timeout,
        endpoint_url=endpoint_url,
    )


@lru_cache
def dynamodb() -> Any:
    """The DynamoDB client (connection records)."""
    return _client("dynamodb", get_settings().dynamodb_endpoint_url)


@lru_cache
def management_api() -> Any:
    """The API Gateway Management API of the WebSocket stage (posting to connections)."""
    url = require(get_settings().websocket_management_url, "WEBSOCKET_MANAGEMENT_URL")
    return _client("apigatewaymanagementapi", url)
