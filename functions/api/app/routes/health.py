"""Liveness, public."""

from fastapi import APIRouter
from pydantic import BaseModel

from items_core.models import InternalError

router = APIRouter(
    tags=["health"],
    # Nothing here can fail but the configuration, which every request reads.
    responses={500: {"model": InternalError, "description": "The function is misconfigured (logged)."}},
)


class Health(BaseModel):
    """The service is up."""

    status: str


@router.get("/health")
async def get_health() -> Health:
    """Report that the service answers (also to HEAD); touches no dependency."""
    return Health(status="ok")
