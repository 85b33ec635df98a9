"""/docs and /redoc load their scripts and styles at pinned versions with Subresource Integrity
hashes, and nothing from another host without one (serve_app/docs_pages.py)."""

from __future__ import annotations

import re

import pytest
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from serve_app.api import create_app
from serve_app.docs_pages import INTEGRITY, with_integrity

_EXTERNAL = re.compile(r'<(?:script|link)[^>]*?(?:src|href)="(https?://[^"]+)"[^>]*>')


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(with_ray=False))  # no lifespan: the pages need no services


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_every_external_file_of_a_docs_page_is_pinned_and_checked(
    client: TestClient, path: str
) -> None:
    page = client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    tags = list(_EXTERNAL.finditer(page.text))
    assert tags, page.text[:300]
    for tag in tags:
        url = tag.group(1)
        assert re.search(r"@\d+\.\d+\.\d+/", url), url  # one version, not "@5" or "latest"
        assert f'integrity="{INTEGRITY[url]}"' in tag.group(0)
        assert 'crossorigin="anonymous"' in tag.group(0)
    assert "fonts.googleapis.com" not in page.text and "tiangolo.com" not in page.text


def test_the_hashes_are_sha384_of_one_file_each() -> None:
    assert len(set(INTEGRITY.values())) == len(INTEGRITY)
    for digest in INTEGRITY.values():
        assert re.fullmatch(r"sha384-[A-Za-z0-9+/]{64}", digest), digest


def test_a_page_loading_a_file_without_a_hash_is_refused() -> None:
    """A newer FastAPI whose page loads one more file fails at start, not serves it unchecked."""
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="t",
        swagger_js_url="https://cdn.example/other.js",
        swagger_css_url=next(url for url in INTEGRITY if url.endswith(".css")),
        swagger_favicon_url="data:,",
    )
    with pytest.raises(RuntimeError, match=r"cdn\.example/other\.js"):
        with_integrity(page)
    for tag in ("<script src=//cdn.example/x.js>", "<link href='http://cdn.example/x.css'>"):
        sneaky = HTMLResponse(f"<html><head>{tag}</head></html>")
        with pytest.raises(RuntimeError, match="cdn.example/x"):
            with_integrity(sneaky)
    local = HTMLResponse('<link rel="icon" href="data:,"><script src="/static/a.js"></script>')
    assert with_integrity(local) == bytes(local.body).decode()


def test_the_docs_pages_are_not_in_the_api_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/docs", "/redoc"} & set(paths)
    assert client.head("/docs").status_code == 200
    refused = client.post("/docs")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
