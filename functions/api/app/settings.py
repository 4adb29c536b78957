"""Configuration read from the environment once per container."""

from functools import lru_cache
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from items_core.bearer import OwnerClaim
from items_core.environment import from_environment
from items_core.settings_errors import describe_settings_errors

# The most AWS calls one request makes in sequence (an idempotent POST: claim the
# key, bump the id counter, put the item, record the response; an idempotent write
# to a tagged item: claim, the untagged attempt, the transaction, record). The capacity
# tests hold every route to it; the template's RetryBudget declares it.
MAX_AWS_CALLS_PER_REQUEST = 4
# Plus at most three calls of a single attempt each, which a request can do without: a read of the
# items table's layout row (items_core/layout.py; when it fails the request goes on the way that
# is right for every layout), a lease of the owner's rate (app/limits.py; when it fails the
# request goes through) and a delete's update of its owner's count (app/store/items.py; when it
# fails the count errs strict).
LAYOUT_READ_MAX_ATTEMPTS = 1
SINGLE_ATTEMPT_CALLS_PER_REQUEST = 3


def _empty_is_unset(value: object) -> object:
    return None if value == "" else value


class Settings(BaseModel):
    """Every setting the API reads; docs/configuration.md lists them with their defaults."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    table_name: str = Field(
        min_length=3, max_length=255, description="a DynamoDB table name, 3-255 characters"
    )
    idempotency_table_name: str = Field(
        min_length=3, max_length=255, description="a DynamoDB table name, 3-255 characters"
    )
    # Empty is unset: the template declares the variables only local runs fill (E9011).
    dynamodb_endpoint_url: Annotated[str | None, BeforeValidator(_empty_is_unset)] = None
    owner_claim: OwnerClaim = "sub"
    # The OAuth scope every /items route requires (template parameter AuthorizationScope): API
    # Gateway checks it when deployed; `make run` and `sam local` check it in app.sam_local.
    authorization_scope: str = Field(default="items-api/items", min_length=1, max_length=256)
    api_base_path: str = ""
    # Each owner's allowance (app/limits.py); 0 switches a limit off.
    owner_reads_per_second: int = Field(default=50, ge=0, le=1_000_000, description="an integer from 0 up")
    owner_write_units_per_second: int = Field(
        default=50, ge=0, le=1_000_000, description="an integer from 0 up"
    )
    owner_idempotency_keys_per_hour: int = Field(
        default=10_000, ge=0, le=100_000_000, description="an integer from 0 up"
    )
    owner_items_stored: int = Field(
        default=10_000, ge=0, le=1_000_000_000, description="an integer from 0 up"
    )
    # Retries and timeouts of every AWS call (items_core.aws_clients; the template's RetryBudget).
    dynamodb_max_attempts: int = Field(default=3, ge=1, le=10, description="an integer from 1 to 10")
    dynamodb_connect_timeout: float = Field(
        default=0.5, gt=0, le=10, description="seconds, above 0 and at most 10"
    )
    dynamodb_read_timeout: float = Field(
        default=0.5, gt=0, le=10, description="seconds, above 0 and at most 10"
    )
    # botocore's client-side check of every call's parameters (docs/performance.md).
    # Valid parameters serialise to the same
    # request either way, and the service validates them again, so the tests and
    # `make run` switch it on to catch a malformed call, and Lambda skips it.
    aws_validate_params: bool = False
    cursor_secret_arn: Annotated[str | None, BeforeValidator(_empty_is_unset)] = None
    cursor_signing_key: Annotated[SecretStr | None, BeforeValidator(_empty_is_unset)] = None

    @field_validator("api_base_path")
    @classmethod
    def _normalise_base_path(cls, value: str) -> str:
        value = value.strip().strip("/")
        return f"/{value}" if value else ""


class SettingsError(ValueError):
    """The environment does not configure the API correctly; the message names each variable."""


@lru_cache
def get_settings() -> Settings:
    """Settings parsed once per container (tests clear the cache); SettingsError names what is wrong."""
    try:
        return from_environment(Settings)
    except ValidationError as error:
        raise SettingsError(describe_settings_errors(error, Settings)) from None
