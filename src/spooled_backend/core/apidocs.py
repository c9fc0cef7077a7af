"""`/docs` (Swagger UI) and `/redoc` (ReDoc) that render offline.

The assets come from the `fastapi-offline` package (its packaged Swagger UI bundle, CSS and
ReDoc standalone build), served from `/docs/assets/…`; no CDN. Those two pages carry their own
Content-Security-Policy that allows scripts only from this origin (the two bundles and our
small init script) and the document fetch; every other response keeps the API's
`default-src 'none'` (core/middleware.py leaves a route's own CSP in place).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from starlette.responses import FileResponse, HTMLResponse, Response

from spooled_backend.core.errors import NotFound

ASSET_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# ReDoc and Swagger UI set inline styles (style attributes / injected <style>), ReDoc starts a
# web worker from a blob: URL; scripts themselves only from this origin.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
SWAGGER_INIT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    layout: "BaseLayout", persistAuthorization: false
  });
});
"""
SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} – API docs</title>
<link rel="icon" href="/docs/assets/favicon.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-init.js"></script>
</body></html>
"""
REDOC_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} – API reference</title>
<link rel="icon" href="/docs/assets/favicon.png"></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="/docs/assets/redoc.standalone.js"></script>
</body></html>
"""
CACHE = "public, max-age=86400"


def docs_router(title: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def swagger_ui() -> Response:
        return HTMLResponse(SWAGGER_PAGE.format(title=title),
                            headers={"content-security-policy": DOCS_CSP})

    @router.get("/redoc")
    async def redoc() -> Response:
        return HTMLResponse(REDOC_PAGE.format(title=title),
                            headers={"content-security-policy": DOCS_CSP})

    @router.get("/docs/assets/swagger-init.js")
    async def swagger_init() -> Response:
        return Response(SWAGGER_INIT, media_type="text/javascript; charset=utf-8",
                        headers={"cache-control": CACHE})

    @router.get("/docs/assets/{name}")
    async def asset(name: str) -> Response:
        media = ASSETS.get(name)
        if media is None:
            raise NotFound("No such documentation asset")
        return FileResponse(ASSET_DIR / name, media_type=media, headers={"cache-control": CACHE})

    return router
