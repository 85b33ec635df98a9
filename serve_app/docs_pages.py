"""The interactive API docs, `/docs` (Swagger UI) and `/redoc`: FastAPI's pages, with their
scripts and styles pinned to one version on jsDelivr and checked by the browser against
Subresource Integrity hashes. FastAPI's defaults load `swagger-ui-dist@5` and `redoc@2`, whatever
the CDN serves under those names that day, into a page where a user pastes a bearer token; a
changed file is now refused instead of run. No favicon or font is fetched from elsewhere.

The hashes are of the files in the npm packages (jsDelivr serves them unchanged), checked on
2026-12-07 against the registry's own sha512 of each package. To move to a newer version:
download the package (`npm pack swagger-ui-dist@X`), and take
`openssl dgst -sha384 -binary FILE | base64` of each file below.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.36.0"
REDOC = "https://cdn.jsdelivr.net/npm/redoc@2.5.4"
SWAGGER_JS = f"{SWAGGER_UI}/swagger-ui-bundle.js"
SWAGGER_CSS = f"{SWAGGER_UI}/swagger-ui.css"
REDOC_JS = f"{REDOC}/bundles/redoc.standalone.js"
INTEGRITY = {
    SWAGGER_JS: "sha384-fUpRgC19yPykTqzdrUbdAg8NTiu16NEKf9U12J+IJWCg8/1mEI8f2+PEIz60Wyd+",
    SWAGGER_CSS: "sha384-z/AtSaOHGn5MJ5auAHXUypohywlIWLBZo1jeGmhdpVIbCnFhxAH92cwdV41oyINc",
    REDOC_JS: "sha384-w447zOpYfw/1Tv/5AK9NfHTlQIqE3RVR6KY62jCyy9zNDgO64cMwGGP1Fj0zJVf5",
}
_NO_ICON = "data:,"  # an empty icon: the browser asks no other host for one


def install(app: FastAPI, openapi_url: str) -> None:
    """`GET /docs` and `GET /redoc` (the app is built with `docs_url=None, redoc_url=None`)."""
    swagger = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=SWAGGER_JS,
        swagger_css_url=SWAGGER_CSS,
        swagger_favicon_url=_NO_ICON,
    )
    redoc = get_redoc_html(
        openapi_url=openapi_url,
        title=f"{app.title} - ReDoc",
        redoc_js_url=REDOC_JS,
        redoc_favicon_url=_NO_ICON,
        with_google_fonts=False,
    )
    pages = {"/docs": with_integrity(swagger), "/redoc": with_integrity(redoc)}
    for path, html in pages.items():
        app.add_api_route(path, _page(html), methods=["GET"], include_in_schema=False)


def with_integrity(page: HTMLResponse) -> str:
    """The page with `integrity` and `crossorigin` on each of its external files; every `src` or
    `href` must be one of those, a `data:` URL or a path of this origin (a page of a newer
    FastAPI loading one more file is refused at start, not served unchecked)."""
    html = bytes(page.body).decode()
    for url, digest in INTEGRITY.items():
        for attribute in ("src", "href"):
            html = html.replace(
                f'{attribute}="{url}"',
                f'{attribute}="{url}" integrity="{digest}" crossorigin="anonymous"',
            )
    unchecked = [
        tag.group(2)
        for tag in _LOADS.finditer(html)
        if not _local(tag.group(2)) and "integrity=" not in tag.group(0)
    ]
    if unchecked:
        raise RuntimeError(f"API docs page loads files without an integrity hash: {unchecked}")
    return html


# a tag's src or href, quoted either way or not at all, and the rest of the tag
_LOADS = re.compile(r"""<[^>]*?\b(src|href)\s*=\s*["']?([^"'\s>]+)[^>]*>""", re.IGNORECASE)


def _local(url: str) -> bool:
    return url.startswith("data:") or (url.startswith("/") and not url.startswith("//"))


def _page(html: str) -> Callable[[], Awaitable[HTMLResponse]]:
    async def page() -> HTMLResponse:
        return HTMLResponse(html)

    return page
