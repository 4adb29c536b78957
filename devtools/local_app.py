"""The app as `make run` serves it: the Lambda app's factory, plus local token checks and /ws.

None of this is deployed (devtools/check_build.py fails a build that carries
it): deployed, API Gateway verifies tokens and serves realtime.
"""

import os

from fastapi import FastAPI

from app.auth import Forbidden, TokenVerifier
from app.main import create_app
from app.settings import get_settings
from devtools import live
from devtools.local_auth import MIN_SECRET_LENGTH, InsufficientScope, verify_token


def local_token_verifier(secret: str) -> TokenVerifier:
    """Checks this checkout's HS256 dev tokens; the owner is the claim OWNER_CLAIM names."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"LOCAL_JWT_SECRET must have at least {MIN_SECRET_LENGTH} characters")

    def verify(token: str) -> str | None:
        try:
            return verify_token(secret, token, owner_claim=get_settings().owner_claim)
        except InsufficientScope as error:
            raise Forbidden(str(error)) from None

    return verify


def create_local_app() -> FastAPI:
    """The local app (uvicorn's factory): LOCAL_JWT_SECRET signs tokens, LOCAL_REALTIME=true serves /ws."""
    return create_app(
        token_verifier=local_token_verifier(os.environ.get("LOCAL_JWT_SECRET", "")),
        lifespan=live.lifespan,
        extra_routers=[live.router],
    )
