"""The app as `make run` serves it: the Lambda app's factory, plus local token checks and /ws."""

import os

from fastapi import FastAPI

from app.main import create_app
from app.sam_local import local_token_verifier
from devtools import live

__all__ = ["create_local_app", "local_token_verifier"]


def create_local_app() -> FastAPI:
    """The local app (uvicorn's factory): LOCAL_JWT_SECRET signs tokens, LOCAL_REALTIME=true serves /ws."""
    return create_app(
        token_verifier=local_token_verifier(os.environ.get("LOCAL_JWT_SECRET", "")),
        lifespan=live.lifespan,
        extra_routers=[live.router],
    )
