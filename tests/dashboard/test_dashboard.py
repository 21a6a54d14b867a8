"""The dashboard in headless Chromium, against a real conveyor-api and worker
(scripts/test-dashboard.sh starts them)."""

import gzip
import re
import time
import urllib.request
import uuid

import pytest
from playwright.sync_api import expect

from conftest import ADMIN_TOKEN, BASE_URL, VIEWER_TOKEN, Api, screenshot, sign_in

ACTIONS = ["Retry", "Cancel", "Pause", "Resume", "Clean", "Replay", "Trigger", "Enable", "Disable"]


def button(page, name):
    return page.get_by_role("button", name=name, exact=True)


def confirm(page):
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Confirm", exact=True).click()
    expect(dialog).to_be_hidden()


def failed_job(api, message="boom"):
    job = api.enqueue("FAIL", {"message": message, "retryable": False}, maxAttempts=1)
    assert api.wait_job(job["id"])["status"] == "FAILED"
    return job["id"]


def dead_letter_of(api, job_id, timeout=30):
    """Waits until the job's dead letter is in the diagnostics stream."""
    deadline = time.monotonic() + timeout
    while not any(d["jobId"] == job_id for d in api.ok("GET", "/api/admin/dlq/diagnostics?limit=1000")):
        assert time.monotonic() < deadline, f"no dead letter for {job_id}"
        time.sleep(0.25)


def schedule(api, **extra):
    body = {
        "name": f"dash-{uuid.uuid4().hex[:8]}",
        "queueName": "diagnostics",
        "jobType": "ECHO",
        "cronExpression": "0 0 2 * * *",
        "timezone": "UTC",
        "payload": {"from": "dashboard test"},
    }
    body.update(extra)
    return api.ok("POST", "/api/admin/scheduled-jobs", body)


@pytest.fixture(scope="module", autouse=True)
def some_jobs(api):
    """A few finished jobs so that every page has something to show."""
    ids = [api.enqueue("ECHO", {"n": i})["id"] for i in range(3)]
    ids.append(api.enqueue("SLEEP", {"ms": 50})["id"])
    for job_id in ids:
        api.wait_job(job_id)
    return ids


def test_sign_in_shows_every_queue_and_keeps_the_token_in_session_storage(page, api):
    page.goto("/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    sign_in(page)
    expect(page.locator("#role")).to_have_text("admin")
    table = page.locator("table").last
    for queue in ["author_data", "batch_orchestrator", "book_data", "diagnostics", "quote_data"]:
        expect(table.get_by_role("link", name=queue, exact=True)).to_be_visible()
    for column in ["Waiting", "Active", "Delayed", "Failed", "Completed", "State"]:
        expect(table.get_by_role("columnheader", name=column)).to_be_visible()
    expect(page.locator("svg.chart")).to_be_visible()
    # The throughput chart fills in as the page samples the status.
    expect(page.locator("svg.chart polyline")).to_have_count(1, timeout=15_000)

    assert page.evaluate("sessionStorage.getItem('conveyor.token')") == ADMIN_TOKEN
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    assert all(ADMIN_TOKEN not in url for url in page.watch.requests)
    screenshot(page, "overview")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('conveyor.token')") is None


def test_a_refused_token_shows_the_refusal_and_nothing_else(page):
    # Chromium itself logs the refused check (a 401 answer) as a failed resource
    # load; that is the only console message allowed here.
    page.watch.allowed_console.append("the server responded with a status of 401")
    page.goto("/jobs")
    page.locator("input[type=password]").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("This token was refused.")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    expect(page.locator("table")).to_have_count(0)
    assert page.evaluate("sessionStorage.length") == 0
    # The right token then works on the same page.
    page.locator("input[type=password]").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()


def test_a_job_page_follows_the_job_to_completion_without_reloading(page, api):
    sign_in(page)
    job = api.enqueue("PROGRESS", {"steps": 5, "stepMs": 500}, delayMs=1500)
    page.goto(f"/jobs/{job['id']}")
    expect(page.get_by_role("heading", name=re.compile(job["id"]))).to_be_visible()
    expect(page.locator("dd").first).to_have_text(re.compile("DELAYED|PENDING"))
    page.evaluate("window.__stayed = true")
    navigations = len(page.watch.navigations)

    live = page.locator("[data-live=progress]")
    expect(live).to_have_text(re.compile(r"^([1-9]\d?) %$"), timeout=20_000)  # under way
    expect(page.locator("dd").first).to_have_text("COMPLETED", timeout=20_000)
    expect(live).to_have_text("100 %")
    expect(page.get_by_role("heading", name="Result")).to_be_visible()
    expect(page.locator("table")).to_contain_text("COMPLETED")  # the execution

    assert page.evaluate("window.__stayed") is True, "the page was reloaded"
    assert len(page.watch.navigations) == navigations, page.watch.navigations
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert any(u.endswith(f"/api/admin/jobs/{job['id']}/events") for u in page.watch.requests)
    assert api.job(job["id"])["status"] == "COMPLETED"


def test_the_job_list_filters_by_url_and_by_form_and_pages(page, api):
    failed = failed_job(api, "filter me")
    batch = api.ok(
        "POST",
        "/api/admin/jobs/bulk",
        {"jobs": [{"queueName": "diagnostics", "jobType": "NOOP", "payload": {}} for _ in range(25)]},
    )
    for job_id in batch["ids"]:
        api.wait_job(job_id)
    sign_in(page, path="/jobs?queue=diagnostics&status=COMPLETED&jobType=NOOP")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(20)
    expect(page.locator("#f-queue")).to_have_value("diagnostics")
    expect(page.locator("#f-status")).to_have_value("COMPLETED")
    expect(page.locator("#f-type")).to_have_value("NOOP")
    expect(page.get_by_text(re.compile(r"Page 1 of \d+"))).to_be_visible()
    for text in rows.all_inner_texts():
        assert "NOOP" in text and "COMPLETED" in text, text

    page.get_by_role("link", name="Next").click()
    expect(page).to_have_url(re.compile(r"[?&]page=2"))
    expect(page.get_by_text(re.compile(r"Page 2 of \d+"))).to_be_visible()

    # The form writes the filters into the URL.
    page.locator("#f-status").select_option("FAILED")
    page.locator("#f-type").fill("FAIL")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/jobs\?queue=diagnostics&status=FAILED&jobType=FAIL$"))
    expect(page.get_by_role("link", name=failed[-8:])).to_be_visible()
    for text in page.locator("tbody tr").all_inner_texts():
        assert "FAILED" in text and "FAIL" in text, text
    screenshot(page, "jobs")


def test_retry_a_failed_job_by_click(page, api):
    job_id = failed_job(api)
    sign_in(page, path=f"/jobs/{job_id}")
    expect(page.locator("dd").first).to_have_text("FAILED")
    expect(page.locator("pre.error-text")).to_have_text("boom")
    button(page, "Retry").click()
    # Asked first: nothing happened yet.
    expect(page.locator("dialog#confirm")).to_be_visible()
    assert api.job(job_id)["executions"][-1]["run"] == 1
    confirm(page)
    # A second run starts, and fails again like the first.
    expect(page.locator("tbody tr")).to_have_count(2, timeout=20_000)
    expect(page.locator("dd").first).to_have_text("FAILED", timeout=20_000)
    runs = [e["run"] for e in api.wait_job(job_id)["executions"]]
    assert runs == [1, 2], runs


def test_cancel_a_waiting_job_by_click(page, api):
    job = api.enqueue("SLEEP", {"ms": 10}, delayMs=600_000)
    sign_in(page, path=f"/jobs/{job['id']}")
    expect(page.locator("dd").first).to_have_text("DELAYED")
    button(page, "Cancel").click()
    confirm(page)
    expect(page.locator("dd").first).to_have_text("CANCELLED")
    assert api.job(job["id"])["status"] == "CANCELLED"
    expect(button(page, "Cancel")).to_have_count(0)
    expect(button(page, "Retry")).to_be_visible()


def test_pause_and_resume_a_queue_by_click(page, api):
    sign_in(page, path="/queues/diagnostics")
    button(page, "Pause").click()  # acts at once
    expect(button(page, "Resume")).to_be_visible()
    expect(page.locator("dialog#confirm")).to_be_hidden()
    expect(page.locator(".head .status")).to_have_text("paused")
    assert api.ok("GET", "/api/admin/jobs/queue/diagnostics/stats")["paused"] is True
    button(page, "Resume").click()
    expect(button(page, "Pause")).to_be_visible()
    expect(page.locator(".head .status")).to_have_text("running")
    assert api.ok("GET", "/api/admin/jobs/queue/diagnostics/stats")["paused"] is False


def test_clean_a_queue_and_replay_dead_letters_by_click(page, api):
    message = f"to replay {uuid.uuid4().hex[:8]}"
    dead_letter_of(api, failed_job(api, message))
    sign_in(page, path="/dead-letters?queue=diagnostics")
    expect(page.get_by_role("cell", name=message)).to_be_visible()
    button(page, "Replay").click()
    confirm(page)
    expect(page.get_by_text(re.compile(r"\d+ jobs? of diagnostics replayed"))).to_be_visible()

    page.goto("/queues/diagnostics")
    page.locator("#clean-status").select_option("COMPLETED")
    page.locator("#clean-grace").fill("0")
    button(page, "Clean").click()
    confirm(page)
    expect(page.get_by_text(re.compile(r"Removed [\d,]+ COMPLETED records?"))).to_be_visible()


def test_trigger_disable_and_enable_a_schedule_by_click(page, api):
    s = schedule(api)
    sign_in(page, path="/scheduled")
    row = page.locator("tbody tr", has_text=s["name"])
    expect(row).to_contain_text("enabled")
    row.get_by_role("button", name="Trigger", exact=True).click()
    confirm(page)
    expect(page.locator("#flash")).to_contain_text(f"{s['name']} enqueued job")
    after = api.ok("GET", f"/api/admin/scheduled-jobs/{s['id']}")
    assert after["lastJobId"], after
    job = api.job(after["lastJobId"])
    assert job["jobType"] == "ECHO" and job["payload"] == {"from": "dashboard test"}

    row.get_by_role("button", name="Disable", exact=True).click()
    confirm(page)
    expect(row).to_contain_text("disabled")
    assert api.ok("GET", f"/api/admin/scheduled-jobs/{s['id']}")["status"] == 0
    row.get_by_role("button", name="Enable", exact=True).click()
    confirm(page)
    expect(row.get_by_role("button", name="Disable", exact=True)).to_be_visible()
    assert api.ok("GET", f"/api/admin/scheduled-jobs/{s['id']}")["status"] == 1
    screenshot(page, "scheduled")


def test_a_viewer_sees_every_page_and_no_action(page, api):
    job_id = failed_job(api, "seen by a viewer")
    dead_letter_of(api, job_id)
    running = api.enqueue("SLEEP", {"ms": 10}, delayMs=600_000)["id"]
    schedule(api)
    sign_in(page, token=VIEWER_TOKEN)
    expect(page.locator("#role")).to_have_text("viewer")
    for path, ready in [
        ("/", "table"),
        ("/jobs", "tbody tr"),
        (f"/jobs/{job_id}", "dl"),
        (f"/jobs/{running}", "dl"),
        ("/queues/diagnostics", ".head .status"),
        ("/dead-letters?queue=diagnostics", "tbody tr"),
        ("/scheduled", "tbody tr"),
        ("/workers", "tbody tr"),
    ]:
        page.goto(path)
        page.locator(ready).first.wait_for()
        page.wait_for_timeout(300)
        for name in ACTIONS:
            assert button(page, name).count() == 0, f"{name} on {path}"
    assert api.job(running)["status"] == "DELAYED"


def completed_job(api):
    job = api.enqueue("PROGRESS", {"steps": 3})
    assert api.wait_job(job["id"])["status"] == "COMPLETED"
    return job["id"]


def test_nothing_scrolls_sideways_at_390_px(narrow_page, api):
    page = narrow_page
    done = completed_job(api)
    job_id = failed_job(api, "a long error message " * 8)
    schedule(api)
    sign_in(page)
    pages = [
        ("overview", "/", "table"),
        ("jobs", "/jobs", "tbody tr"),
        ("job", f"/jobs/{done}", "dl"),
        ("failed-job", f"/jobs/{job_id}", "dl"),
        ("queue", "/queues/diagnostics", ".cards .card"),
        ("dead-letters", "/dead-letters?queue=diagnostics", "tbody tr"),
        ("scheduled", "/scheduled", "tbody tr"),
        ("workers", "/workers", "tbody tr"),
        ("authors", "/authors", "tbody tr"),
        ("books", "/books", "tbody tr"),
        ("quotes", "/quotes", "tbody tr"),
    ]
    for name, path, ready in pages:
        page.goto(path)
        page.locator(ready).first.wait_for()
        page.wait_for_timeout(200)
        screenshot(page, name)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide"
    # Signing in at this width too.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_the_pages_at_1280_px(page, api):
    done = completed_job(api)
    sign_in(page)
    for name, path, ready in [
        ("job", f"/jobs/{done}", "dl"),
        ("queue", "/queues/diagnostics", ".cards .card"),
        ("dead-letters", "/dead-letters?queue=diagnostics", "table"),
        ("workers", "/workers", "tbody tr"),
    ]:
        page.goto(path)
        page.locator(ready).first.wait_for()
        page.wait_for_timeout(200)
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        screenshot(page, name)


def test_page_routes_assets_headers_and_size(page):
    sign_in(page)
    entries = page.evaluate(
        "performance.getEntriesByType('resource').filter(e => e.initiatorType !== 'fetch')"
        ".map(e => ({name: e.name, size: e.encodedBodySize}))"
    )
    html = page.evaluate("performance.getEntriesByType('navigation')[0].encodedBodySize")
    total = html + sum(e["size"] for e in entries)
    assert entries and total < 100_000, (total, entries)

    req = urllib.request.Request(BASE_URL + "/jobs/anything?x=1", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as res:
        assert res.headers["Content-Encoding"] == "gzip"
        assert res.headers["Cache-Control"] == "no-cache"
        csp = res.headers["Content-Security-Policy"]
        body = gzip.decompress(res.read()).decode()
    assert "default-src 'self'" in csp and "http" not in csp
    assert '<script src="/dashboard/app.js?v=' in body
    # The API itself still wants a token.
    status, _ = Api(token="").call("GET", "/api/admin/queues")
    assert status == 401
    assert Api(token=VIEWER_TOKEN).ok("GET", "/api/admin/session") == {"role": "viewer"}
    assert Api().ok("GET", "/api/admin/session") == {"role": "admin"}


def test_the_overview_polls_and_charts_recent_throughput_without_reloading(page, api):
    sign_in(page)
    page.evaluate("window.__stayed = true")
    start = len(page.watch.requests)
    for _ in range(6):
        api.ok(
            "POST",
            "/api/admin/jobs/bulk",
            {"jobs": [{"queueName": "diagnostics", "jobType": "SLEEP", "payload": {"ms": 100}} for _ in range(10)]},
        )
        page.wait_for_timeout(2000)
    chart = page.locator("svg.chart")
    expect(chart).to_have_attribute("aria-label", re.compile(r"now [1-9]\d*$"))
    points = page.locator("svg.chart polyline").get_attribute("points").split()
    assert len(points) >= 4, points
    # Only the cheap status and summary routes are polled, and the page stays.
    polled = page.watch.requests[start:]
    assert sum(u.endswith("/api/admin/system/status") for u in polled) >= 3, polled
    assert all(u.endswith(("/api/admin/system/status", "/api/admin/metrics/summary")) for u in polled), polled
    assert page.evaluate("window.__stayed") is True
    screenshot(page, "overview")
