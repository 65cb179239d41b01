"""Browser tests: a live server in a thread and headless Chromium driven by Playwright.

Chromium comes from the Debian package (/usr/bin/chromium; Playwright's own browser download
does not work everywhere). Without it these tests skip with a loud reason, unless
SAMITI_REQUIRE_BROWSER=1 (as .ci/run sets), where they fail instead.
"""
from __future__ import annotations

import os
import shutil
import threading

import pytest
from werkzeug.serving import make_server

from membership.extensions import db

CHROMIUM = os.environ.get("SAMITI_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _missing(reason: str):
    if os.environ.get("SAMITI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required but {reason}")
    pytest.skip(f"BROWSER TESTS SKIPPED: {reason} (install Debian's chromium, or set SAMITI_CHROMIUM)")


@pytest.fixture
def app_config():
    return {"WTF_CSRF_ENABLED": True}


@pytest.fixture
def live_server(app):
    """Serve the test app on a free local port for the duration of a test."""
    db.session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM:
        _missing("no chromium executable found")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                               args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                     "--disable-background-networking", "--disable-component-update",
                                     "--disable-sync", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
