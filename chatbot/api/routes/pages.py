"""The browser UI: our static files and the pinned npm front-end libraries."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from services.errors import APIError

from ..deps import SettingsDep

router = APIRouter(tags=["ui"])
STATIC = Path(__file__).resolve().parents[2] / "static"
DEFAULT_VENDOR = STATIC.parent / "node_modules"
# The only files served out of node_modules (installed by `npm ci` from package.json).
VENDOR = {
    "marked.js": "marked/lib/marked.umd.js",
    "purify.js": "dompurify/dist/purify.min.js",
    "highlight.js": "@highlightjs/cdn-assets/highlight.min.js",
    # Themes made for WCAG AA contrast, one for each colour scheme.
    "highlight-light.css": "@highlightjs/cdn-assets/styles/a11y-light.min.css",
    "highlight-dark.css": "@highlightjs/cdn-assets/styles/a11y-dark.min.css",
}
PAGES = {"": "index.html", "documents": "documents.html", "help": "help.html",
         "login": "login.html", "settings": "settings.html"}
ASSETS = {"app.js", "render.js", "documents.js", "login.js", "settings.js", "common.js",
          "theme.js", "shared.js", "style.css"}


def _file(path: Path) -> FileResponse:
    if not path.is_file():
        raise APIError(404, "Unknown file.", code="not_found")
    return FileResponse(path, headers={"Cache-Control": "no-cache"})


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The chat page."""
    return _file(STATIC / PAGES[""])


@router.get("/documents", include_in_schema=False)
async def documents_page() -> FileResponse:
    """The documents page: upload, list, delete."""
    return _file(STATIC / PAGES["documents"])


@router.get("/login", include_in_schema=False)
async def login_page() -> FileResponse:
    """Log in, or create the first (admin) account."""
    return _file(STATIC / PAGES["login"])


@router.get("/settings", include_in_schema=False)
async def settings_page() -> FileResponse:
    """API keys; users and sign-up for the admin."""
    return _file(STATIC / PAGES["settings"])


@router.get("/help", include_in_schema=False)
async def help_page() -> FileResponse:
    """Keyboard shortcuts, commands and what the page's buttons do."""
    return _file(STATIC / PAGES["help"])


@router.get("/static/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    """Our own scripts and styles (a fixed list: no path ever reaches the filesystem)."""
    if name not in ASSETS:
        raise APIError(404, "Unknown file.", code="not_found")
    return _file(STATIC / name)


@router.get("/vendor/{name}", include_in_schema=False)
async def vendor(name: str, settings: SettingsDep) -> FileResponse:
    """A front-end library from node_modules; 404 naming the fix if npm was not run."""
    if name not in VENDOR:
        raise APIError(404, "Unknown file.", code="not_found")
    path = (settings.vendor_dir or DEFAULT_VENDOR) / VENDOR[name]
    if not path.is_file():
        raise APIError(404, f"{name} is missing: run 'npm ci' in chatbot/.",
                       code="vendor_missing")
    return _file(path)
