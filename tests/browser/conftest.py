"""Fixtures for the console's browser tests: the gateway scripts/test-browser started,
an API client for it, and a page of Debian's Chromium driven by Playwright."""

import os
import pathlib
import tempfile

import pytest
import requests
from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def gateway():
    url, key = os.environ.get("GATEWAY_URL"), os.environ.get("FIREHOOK_API_KEY")
    if not url or not key:
        pytest.fail("run through scripts/test-browser, which starts a gateway")
    return url, key


@pytest.fixture(scope="session")
def api(gateway):
    url, key = gateway
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"

    def call(method, path, **kwargs):
        res = session.request(method, url + path, timeout=10, **kwargs)
        assert res.status_code < 300, f"{method} {path}: {res.status_code} {res.text}"
        return res.json()

    return call


@pytest.fixture(scope="session")
def screenshots():
    folder = pathlib.Path(os.environ.get("SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="firehook-console-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(gateway):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # Script errors and Content-Security-Policy violations fail the test; answers
        # such as 401 or 404 (a probed API this gateway does not serve) do not.
        page.on("console", lambda m: errors.append(m.text)
                if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
        page.set_default_timeout(10_000)
        yield page
        context.close()
        browser.close()
        assert not errors, errors
