"""Liveness, public."""

from fastapi import APIRouter
from pydantic import BaseModel

from items_core.models import ErrorDetail, InternalError

router = APIRouter(
    tags=["health"],
    responses={
        413: {"model": ErrorDetail, "description": "Request body over 16 KB."},
        500: {"model": InternalError, "description": "Unexpected failure."},
    },
)


class Health(BaseModel):
    """The service is up."""

    status: str


@router.get("/health")
async def health() -> Health:
    """Report that the service answers; touches no dependency."""
    return Health(status="ok")
