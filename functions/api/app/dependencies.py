"""Every FastAPI dependency, as `Annotated` aliases that route signatures use."""

from functools import lru_cache
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth import authenticate
from app.preconditions import parse_if_match
from app.settings import Settings, get_settings
from app.storage import AnyVersion, ItemStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SettingsDep = Annotated[Settings, Depends(get_settings)]


@lru_cache
def get_dynamodb_client() -> "DynamoDBClient":
    """One DynamoDB client per container, created on first use."""
    import boto3  # not at import time: /health and the docs never pay for it
    from botocore.config import Config

    settings = get_settings()
    config = Config(
        retries={"mode": "standard", "max_attempts": settings.dynamodb_max_attempts},
        connect_timeout=settings.dynamodb_connect_timeout,
        read_timeout=settings.dynamodb_read_timeout,
    )
    return boto3.session.Session().client(
        "dynamodb", endpoint_url=settings.dynamodb_endpoint_url, config=config
    )


@lru_cache
def get_item_store() -> ItemStore:
    """The item store, bound to the configured table, once per container."""
    return ItemStore(get_dynamodb_client(), get_settings().table_name)


ItemStoreDep = Annotated[ItemStore, Depends(get_item_store)]

# auto_error=False: deployed, API Gateway has verified the token already and the
# owner comes from the event; the scheme still documents "Authorize" in the docs.
bearer_scheme = HTTPBearer(auto_error=False, description="A JWT from the configured issuer.")


async def get_owner(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """The authenticated owner of this request (401 otherwise)."""
    token = credentials.credentials if credentials else None
    return authenticate(settings, request.scope.get("aws.event"), token)


CurrentOwner = Annotated[str, Depends(get_owner)]
ItemId = Annotated[int, Path(ge=1, description="The item's id, an integer >= 1.")]


async def get_if_match(
    item_id: ItemId,
    if_match: Annotated[
        str | None,
        Header(description="Only change the item if its ETag is one of these (or `*`); else 412."),
    ] = None,
) -> list[int] | AnyVersion | None:
    """The item versions the client's If-Match accepts, None without the header."""
    return parse_if_match(if_match, item_id)


IfMatch = Annotated[list[int] | AnyVersion | None, Depends(get_if_match)]
