"""Fixtures of the dashboard's browser tests.

scripts/test-dashboard.sh starts conveyor-api and a diagnostics worker and passes:

    DASH_URL              the API's base URL (http://127.0.0.1:<port>)
    DASH_ADMIN_TOKEN      an admin token
    DASH_VIEWER_TOKEN     a viewer token
    DASH_SCREENSHOTS      where screenshots go (default target/dashboard-screenshots)
    DASH_CHROMIUM         the browser (default /usr/bin/chromium)

Every page a test opens records its requests, page errors and console errors; the
test fails if any request leaves the API's origin or any error was seen.
"""

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

BASE_URL = os.environ.get("DASH_URL", "http://127.0.0.1:8080").rstrip("/")
ADMIN_TOKEN = os.environ.get("DASH_ADMIN_TOKEN", "")
VIEWER_TOKEN = os.environ.get("DASH_VIEWER_TOKEN", "")
SCREENSHOTS = Path(
    os.environ.get(
        "DASH_SCREENSHOTS",
        Path(__file__).resolve().parents[2] / "target" / "dashboard-screenshots",
    )
)
CHROMIUM = os.environ.get("DASH_CHROMIUM", "/usr/bin/chromium")
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


class Api:
    """A small client of the admin API (admin token unless told otherwise)."""

    def __init__(self, token=ADMIN_TOKEN):
        self.token = token

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(BASE_URL + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as res:
                raw = res.read()
                return res.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, (json.loads(raw) if raw else None)

    def ok(self, method, path, body=None):
        status, data = self.call(method, path, body)
        assert 200 <= status < 300, f"{method} {path}: {status} {data}"
        return data

    def enqueue(self, job_type, payload, **extra):
        body = {"queueName": "diagnostics", "jobType": job_type, "payload": payload}
        body.update(extra)
        return self.ok("POST", "/api/admin/jobs", body)

    def job(self, job_id):
        return self.ok("GET", f"/api/admin/jobs/{job_id}")

    def wait_job(self, job_id, statuses=TERMINAL, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
            time.sleep(0.2)


@pytest.fixture(scope="session")
def api():
    return Api()


@pytest.fixture(scope="session")
def browser():
    assert ADMIN_TOKEN and VIEWER_TOKEN, "DASH_ADMIN_TOKEN and DASH_VIEWER_TOKEN must be set"
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield b
        b.close()


class Watch:
    """What a page did: requests, errors, main-frame navigations."""

    def __init__(self, page):
        self.requests = []
        self.errors = []
        self.navigations = []
        self.allowed_console = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on(
            "console",
            lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None,
        )
        page.on(
            "framenavigated",
            lambda f: self.navigations.append(f.url) if f == page.main_frame else None,
        )

    def check(self):
        origin = urlsplit(BASE_URL)
        foreign = [
            u for u in self.requests
            if urlsplit(u).scheme not in ("data", "blob", "about")
            and (urlsplit(u).scheme, urlsplit(u).netloc) != (origin.scheme, origin.netloc)
        ]
        assert not foreign, f"requests left the origin: {foreign}"
        errors = [
            e for e in self.errors
            if not any(allowed in e for allowed in self.allowed_console)
        ]
        assert not errors, f"errors in the page: {errors}"


def _open(browser, width, height):
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=BASE_URL)
    page = context.new_page()
    page.set_default_timeout(15_000)
    watch = Watch(page)
    page.watch = watch
    return context, page


@pytest.fixture
def page(browser):
    context, page = _open(browser, 1280, 900)
    yield page
    context.close()
    page.watch.check()


@pytest.fixture
def narrow_page(browser):
    context, page = _open(browser, 390, 844)
    yield page
    context.close()
    page.watch.check()


def sign_in(page, token=ADMIN_TOKEN, path="/"):
    """Opens `path`, signs in with `token` and waits for the page's navigation."""
    page.goto(path)
    page.locator("input[type=password]").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#nav").wait_for(state="visible")


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"]
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
