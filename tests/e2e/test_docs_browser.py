"""The API docs in a real headless Chromium (Debian package ``chromium``, installed by
scripts/test), driven by Playwright with the system browser (no browser download).

The browser may reach 127.0.0.1 only: every other request is aborted and recorded, and the
test fails if the page asked for one (a CDN bundle, a web font) or broke its CSP.
Where chromium is missing the test fails under CI and is skipped elsewhere, with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, Route, async_playwright, expect

from tests.e2e.rest_support import (
    AUDITOR,
    LiveServer,
    Rest,
    live_server,  # noqa: F401 - fixture
    rest,  # noqa: F401 - fixture
    token,
)

_INSTALL_HINT = "run scripts/test, or: apt-get install chromium"
# ReDoc's menu footer always asks for its vendor's logo from a CDN, and hides the image when it
# fails to load: our CSP refuses it, which is the one CSP report the ReDoc page may give.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
STATUS_PATH = "/api/v1/ekms/status"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"chromium is not installed: {_INSTALL_HINT}")
    pytest.skip(f"chromium is not installed: {_INSTALL_HINT}")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = _chromium()
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=executable,
            headless=True,
            # Belt and braces beside the route filter below: no name resolves but loopback.
            args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--no-sandbox"],
        )
        try:
            yield launched
        finally:
            await launched.close()


class OfflinePage:
    """A page whose requests off 127.0.0.1 are aborted; it records them and CSP breaks."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.blocked: list[str] = []
        self.csp_errors: list[str] = []
        page.on("console", self._on_console)

    def _on_console(self, message: object) -> None:
        text = str(getattr(message, "text", ""))
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.csp_errors.append(text)

    async def route(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            self.blocked.append(route.request.url)
            await route.abort("internetdisconnected")


async def open_offline(browser: Browser, url: str) -> OfflinePage:
    """``url`` in a fresh context whose requests off 127.0.0.1 are aborted."""
    context = await browser.new_context()
    page = await context.new_page()
    offline = OfflinePage(page)
    await context.route("**/*", offline.route)
    await page.goto(url)
    return offline


async def test_swagger_ui_renders_offline_and_runs_a_call(
    browser: Browser,
    live_server: LiveServer,  # noqa: F811
) -> None:
    offline = await open_offline(browser, f"{live_server.url}/docs")
    page = offline.page

    operation = page.locator(f'.opblock-get:has(.opblock-summary-path[data-path="{STATUS_PATH}"])')
    await expect(operation).to_have_count(1, timeout=30_000)
    assert await page.locator(".opblock").count() > 10  # the whole operation list rendered

    await page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".modal-ux")
    await dialog.locator("input").fill(token(AUDITOR))
    await dialog.locator(".auth-btn-wrapper .authorize").click()
    await dialog.locator(".auth-btn-wrapper .btn-done").click()

    await operation.locator(".opblock-summary").click()
    await operation.locator(".try-out__btn").click()
    await operation.locator(".execute").click()
    live_status = operation.locator(".live-responses-table .response .response-col_status")
    await expect(live_status).to_have_text("200", timeout=30_000)
    await expect(operation.locator(".live-responses-table .microlight").first).to_contain_text(
        '"serving"'
    )

    assert offline.blocked == []
    assert offline.csp_errors == []


async def test_redoc_renders_offline(
    browser: Browser,
    live_server: LiveServer,  # noqa: F811
) -> None:
    offline = await open_offline(browser, f"{live_server.url}/redoc")
    page = offline.page
    # ReDoc lists each tag and operation in its side menu once it has read /openapi.json.
    await expect(page.locator("[role=menuitem]", has_text="Crypto modules").first).to_be_visible(
        timeout=30_000
    )
    await expect(page.locator("h1").first).to_contain_text("ekms")
    assert offline.blocked == []
    assert [e for e in offline.csp_errors if REDOC_LOGO not in e] == []


async def test_docs_pages_load_only_our_assets(rest: Rest) -> None:  # noqa: F811
    """Without a browser: every script and stylesheet of the pages is ours and is served."""
    for path in ("/docs", "/redoc"):
        page = await rest.client.get(path)
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        policy = dict(part.strip().split(" ", 1) for part in csp.split(";"))
        assert policy["script-src"] == "'self'"
        assert "http" not in csp
        assert re.search(r"<script(?![^>]*\bsrc=)", page.text) is None  # no inline script
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert assets and all(a.startswith("/docs/static/") for a in assets), assets
        for asset in assets:
            served = await rest.client.get(asset)
            assert served.status_code == 200 and served.content, asset
