"""Configuration read from the environment once per container."""

import os
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting the API reads; the README lists them with their defaults."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    table_name: str = Field(min_length=3, max_length=255)
    dynamodb_endpoint_url: str | None = None
    owner_claim: str = Field(default="sub", min_length=1)
    auth_mode: Literal["apigateway", "local"] = "apigateway"
    local_jwt_secret: SecretStr | None = None
    api_base_path: str = ""
    dynamodb_max_attempts: int = Field(default=3, ge=1, le=10)
    dynamodb_connect_timeout: float = Field(default=1.0, gt=0, le=10)
    dynamodb_read_timeout: float = Field(default=2.0, gt=0, le=10)

    @field_validator("api_base_path")
    @classmethod
    def _normalise_base_path(cls, value: str) -> str:
        value = value.strip().strip("/")
        return f"/{value}" if value else ""

    @model_validator(mode="after")
    def _check_local_auth(self) -> "Settings":
        if self.auth_mode != "local":
            return self
        secret = self.local_jwt_secret.get_secret_value() if self.local_jwt_secret else ""
        if len(secret) < 32:
            raise ValueError("AUTH_MODE=local needs LOCAL_JWT_SECRET of at least 32 characters")
        # A deployed function must never verify tokens itself: only `sam local`
        # (which sets AWS_SAM_LOCAL) may run the local mode inside Lambda.
        if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and os.environ.get("AWS_SAM_LOCAL") != "true":
            raise ValueError("AUTH_MODE=local is refused inside a deployed Lambda function")
        return self


@lru_cache
def get_settings() -> Settings:
    """Settings parsed once per container (tests clear the cache)."""
    return Settings()  # type: ignore[call-arg]  # table_name comes from the environment
