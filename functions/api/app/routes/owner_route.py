"""The route class of an owner's resources: who calls, body, query text and charge, before FastAPI."""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from app.dependencies import get_owner, get_owner_rates
from app.limits import charge_request
from app.routes.request_body import (
    JSON,
    MERGE_PATCH,
    ExactJSONRequest,
    check_query_text,
    media_type_problem,
    read_limited,
)


class OwnerRoute(APIRoute):
    """A route of an owner's resource: authenticated, body read within its limit as exact JSON, charged."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        patch = "PATCH" in (self.methods or ())
        accepted = (JSON, MERGE_PATCH) if patch else (JSON,)
        reads_body = self.body_field is not None  # GET and DELETE never read one

        async def owner_handler(request: Request) -> Response:
            # Who calls comes first (401 before 413, 415 or 422), as API Gateway's authorizer
            # answers deployed; the route's owner dependency then reuses this answer.
            owner = await get_owner(request)
            body = await read_limited(request)  # every method: nothing reads more than the limit
            if reads_body:
                problem = media_type_problem(request.headers.get("content-type"), accepted) if body else None
                if problem:
                    accept = {"Accept-Patch": ", ".join(accepted)} if patch else {}
                    raise HTTPException(415, problem, headers=accept)
                request = ExactJSONRequest(request, body)
            check_query_text(request.scope["query_string"])
            await charge_request(get_owner_rates(), request, owner, body if reads_body else b"")
            return await handler(request)

        return owner_handler
