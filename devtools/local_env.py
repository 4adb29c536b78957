"""The environment of a local run: dev signing key, fake AWS credentials, table name."""

import os
import secrets
from pathlib import Path

from devtools.template import REPO_ROOT

LOCAL_DIR = REPO_ROOT / ".local"
SECRET_FILE = LOCAL_DIR / "jwt-secret"
CURSOR_KEY_FILE = LOCAL_DIR / "cursor-key"
LOCAL_TABLE_NAME = "items-local"
LOCAL_IDEMPOTENCY_TABLE_NAME = "items-local-idempotency"
LOCAL_REGION = "us-east-1"


def _checkout_secret(path: Path) -> str:
    """A random secret of this checkout, generated on first use and kept in .local/ (git-ignored)."""
    if not path.exists():
        LOCAL_DIR.mkdir(exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()


def local_jwt_secret() -> str:
    """This checkout's dev-token signing key."""
    return _checkout_secret(SECRET_FILE)


def local_cursor_key() -> str:
    """This checkout's cursor signing key: cursors survive a reload or restart of `make run`."""
    return _checkout_secret(CURSOR_KEY_FILE)


def local_environment(dynamodb_endpoint: str) -> dict[str, str]:
    """Variables that point the app at the embedded DynamoDB, with this checkout's dev-token key."""
    return {
        "TABLE_NAME": LOCAL_TABLE_NAME,
        "IDEMPOTENCY_TABLE_NAME": LOCAL_IDEMPOTENCY_TABLE_NAME,
        "DYNAMODB_ENDPOINT_URL": dynamodb_endpoint,
        "LOCAL_JWT_SECRET": local_jwt_secret(),
        "CURSOR_SIGNING_KEY": local_cursor_key(),
        # The embedded DynamoDB accepts any credentials; fixed fake ones make
        # sure real credentials of the developer are never sent anywhere.
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_SESSION_TOKEN": "local",
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_REGION": LOCAL_REGION,
        "POWERTOOLS_SERVICE_NAME": "items-api",
        # EMF metrics only mean something to CloudWatch; locally they would flood the console.
        "POWERTOOLS_METRICS_DISABLED": "true",
        # /ws pushes item changes, following the embedded DynamoDB's stream.
        "LOCAL_REALTIME": "true",
        # botocore checks every call's parameters (skipped in Lambda, see app/settings.py).
        "AWS_VALIDATE_PARAMS": "true",
        # DynamoDB Local answers in milliseconds, but a JVM warming up on a busy laptop can
        # take longer than the deployed 0.5 s: a local 503 would only mislead.
        "DYNAMODB_CONNECT_TIMEOUT": "1",
        "DYNAMODB_READ_TIMEOUT": "2",
    }


def apply(environment: dict[str, str]) -> None:
    """Set the variables in this process (and so in every child it starts)."""
    os.environ.update(environment)
    os.environ.pop("AWS_PROFILE", None)


def ensure_dir(path: Path) -> Path:
    """Create a folder under .local/ if needed."""
    path.mkdir(parents=True, exist_ok=True)
    return path
