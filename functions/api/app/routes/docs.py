"""Swagger UI (/docs) and ReDoc (/redoc), with their scripts and styles served from the function itself."""

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

# Pinned npm files whose checksums the build verifies (devtools/docs_assets.py): no third-party host.
ASSETS = Path(__file__).resolve().parent.parent / "docs_assets"
_CONTENT_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
TITLE = "Items API"

router = APIRouter(include_in_schema=False)


def _prefix(request: Request) -> str:
    # The stage or base path the client used (RootPathMiddleware), so the page loads from it too.
    return str(request.scope.get("root_path", "")).rstrip("/")


@lru_cache(maxsize=len(_CONTENT_TYPES))
def _asset(name: str) -> bytes:
    return (ASSETS / name).read_bytes()


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI for the API's document."""
    from fastapi.openapi.docs import get_swagger_ui_html

    prefix = _prefix(request)
    return get_swagger_ui_html(
        openapi_url=f"{prefix}{request.app.openapi_url}",
        title=f"{TITLE} - Swagger UI",
        swagger_js_url=f"{prefix}/docs/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{prefix}/docs/assets/swagger-ui.css",
        swagger_favicon_url=f"{prefix}/docs/assets/favicon-32x32.png",
        # No validator badge: it would load an image from validator.swagger.io. A token pasted into
        # "Authorize" lives only as long as the page: persisted, it would sit in the API origin's
        # localStorage for any script of that origin to read.
        swagger_ui_parameters={"persistAuthorization": False, "validatorUrl": None},
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc for the API's document."""
    from fastapi.openapi.docs import get_redoc_html

    prefix = _prefix(request)
    return get_redoc_html(
        openapi_url=f"{prefix}{request.app.openapi_url}",
        title=f"{TITLE} - ReDoc",
        redoc_js_url=f"{prefix}/docs/assets/redoc.standalone.js",
        redoc_favicon_url=f"{prefix}/docs/assets/favicon-32x32.png",
        with_google_fonts=False,
    )


@router.get("/docs/assets/{name}")
async def docs_asset(name: str) -> Response:
    """One script, style sheet or icon of the docs pages."""
    content_type = _CONTENT_TYPES.get(name)
    if content_type is None:
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    try:
        content = _asset(name)
    except FileNotFoundError:
        # A checkout where `make` has not installed them yet (never a built function: check_build).
        return JSONResponse(
            {"detail": "docs assets are not installed: run make run or make test"}, status_code=404
        )
    return Response(content, media_type=content_type, headers={"Cache-Control": "public, max-age=86400"})
