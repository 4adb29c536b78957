"""Liveness, public."""

from fastapi import APIRouter
from pydantic import BaseModel

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The service is up."""

    status: str


@router.get("/health")
async def health() -> Health:
    """Report that the service answers; touches no dependency."""
    return Health(status="ok")
