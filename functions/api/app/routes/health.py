"""Liveness, public."""

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from app.routes.errors import documented_error

router = APIRouter(
    tags=["health"],
    # Nothing here can fail but the configuration, which every request reads.
    responses={500: documented_error("The function is misconfigured (logged).", "Internal Server Error")},
)


class Health(BaseModel):
    """The service is up."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str


@router.get("/health")
async def get_health() -> Health:
    """Report that the service answers (also to HEAD); touches no dependency."""
    return Health(status="ok")
