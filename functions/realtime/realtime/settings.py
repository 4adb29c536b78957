"""Configuration of the realtime functions, read from the environment once per container."""

from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from items_core.aws_clients import worst_case_call_seconds
from items_core.bearer import OwnerClaim
from items_core.environment import from_environment
from items_core.messages import MAX_CONNECTIONS_PER_OWNER
from items_core.settings_errors import describe_settings_errors

# API Gateway closes a WebSocket connection after 2 hours at most; a record
# left behind by a lost $disconnect expires (TTL) a little after that.
DEFAULT_CONNECTION_TTL_SECONDS = 2 * 3600 + 600


class RealtimeSettings(BaseModel):
    """Every setting of the realtime functions; the README lists them."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    connections_table_name: str = Field(
        min_length=3, max_length=255, description="a DynamoDB table name, 3-255 characters"
    )
    dynamodb_endpoint_url: str | None = None
    # The WebSocket handler verifies tokens as the HTTP API's JWT authorizer does.
    # Compared with a token's `iss` exactly, as API Gateway's JWT authorizer compares it (a
    # trailing slash included); discovery is looked up under it without one.
    jwt_issuer: str = ""
    jwt_audience: str = Field(default="", description="comma-separated audiences (or Cognito app client ids)")
    jwks_url: str | None = Field(default=None, description="optional; found through OIDC discovery otherwise")
    owner_claim: OwnerClaim = "sub"
    authorization_scope: str = Field(default="", description="the OAuth scope every token must carry")
    connection_ttl_seconds: int = Field(default=DEFAULT_CONNECTION_TTL_SECONDS, ge=7200, le=86400)
    # One owner's open connections (template parameter MaxConnectionsPerOwner); $connect refuses more.
    max_connections_per_owner: int = Field(
        default=MAX_CONNECTIONS_PER_OWNER, ge=1, le=1000, description="an integer from 1 to 1000"
    )
    # The notifier's time for one owner's changes per invocation; the rest of them are retried.
    owner_fanout_seconds: float = Field(
        default=5.0, gt=0, le=50, description="seconds, above 0 and at most 50"
    )
    # The notifier posts through the API Gateway Management API of the WebSocket stage.
    websocket_management_url: str | None = None
    # Retries and timeouts, sized to the functions' timeouts (see worst_case_call_seconds and
    # connect_budget_seconds; tests/test_realtime_template.py checks them against template.yaml).
    aws_max_attempts: int = Field(default=2, ge=1, le=10, description="an integer from 1 to 10")
    aws_connect_timeout: float = Field(
        default=0.5, gt=0, le=10, description="seconds, above 0 and at most 10"
    )
    aws_read_timeout: float = Field(default=1.0, gt=0, le=10, description="seconds, above 0 and at most 10")
    # OIDC discovery and the JWKS, each fetched at most once per $connect.
    http_timeout: float = Field(default=1.5, gt=0, le=10, description="seconds, above 0 and at most 10")

    def worst_case_call_seconds(self) -> float:
        """The longest one AWS call can take (items_core.aws_clients.worst_case_call_seconds)."""
        return worst_case_call_seconds(self.aws_max_attempts, self.aws_connect_timeout, self.aws_read_timeout)

    def connect_budget_seconds(self) -> float:
        """The longest `$connect` can take: discovery and JWKS fetches, the owner's count, one PutItem."""
        return 2 * self.http_timeout + 2 * self.worst_case_call_seconds()

    @field_validator("jwks_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value and not value.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("must be an https:// URL")
        return value

    def audiences(self) -> list[str]:
        """The accepted audiences, from the comma-separated JWT_AUDIENCE."""
        return [audience.strip() for audience in self.jwt_audience.split(",") if audience.strip()]


class RealtimeSettingsError(ValueError):
    """The environment does not configure the function; the message names each variable."""


@lru_cache
def get_settings() -> RealtimeSettings:
    """Settings parsed once per container (tests clear the cache)."""
    try:
        return from_environment(RealtimeSettings)
    except ValidationError as error:
        raise RealtimeSettingsError(describe_settings_errors(error, RealtimeSettings)) from None


def require(value: str | None, variable: str) -> str:
    """A setting this function cannot work without."""
    if not value:
        raise RealtimeSettingsError(f"invalid settings: {variable}: must be set")
    return value
