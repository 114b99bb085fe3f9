"""The whole approval loop in a real browser: Chromium (Debian's /usr/bin/chromium) driven by Playwright.

An approver signs in, a blocked agent call's request appears on the page without a reload, the
approver clicks Approve, and the agent call returns ``approved`` with the approver's username. The
time from the click to the agent's return is printed (run pytest with -s to see it), not asserted.
"""
import os
import threading
import time

import pytest

from tests.conftest import wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT = 20  # seconds

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"{CHROMIUM} is missing; install Debian's chromium package (apt-get install chromium) to run the browser test",
    ),
]


@pytest.fixture
def browser_page(monkeypatch):
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    # Playwright's sync API keeps an event loop in this thread, so Django refuses ORM calls here without this.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.mark.django_db(transaction=True)
def test_browser_approves_agent(live_server, clean_queues, start_worker, approver, browser_page):
    from singularity.hitl import request_approval

    page = browser_page
    start_worker("--only", "observer_hitl_requests,observer_decisions")
    page.goto(f"{live_server.url}/observer/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "approver-pass-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/observer/")
    page.evaluate("window.loadedOnce = true")  # survives only if the page is never reloaded
    # The browser stamps the click itself (epoch milliseconds, the same clock as time.time() here), so
    # the figure starts at the user's click rather than at Playwright's own checks before clicking.
    page.evaluate(
        "document.addEventListener('click', () => { window.clickedAtMs = Date.now(); }, {capture: true})"
    )

    outcome = {}

    def agent():
        from django.db import connection

        try:
            outcome["decision"] = request_approval(
                agent_id="browser-agent", task_type="deploy", payload={"release": 7}, summary="Deploy release 7",
                timeout=60,
            )
        finally:
            outcome["returned_at"] = time.perf_counter()
            outcome["returned_at_ms"] = time.time() * 1000
            connection.close()

    sent_at = time.perf_counter()
    thread = threading.Thread(target=agent, daemon=True)
    thread.start()

    row = page.locator("tr", has_text="Deploy release 7")
    row.locator("button.approve").wait_for(timeout=WAIT * 1000)
    appeared_s = time.perf_counter() - sent_at
    assert page.evaluate("window.loadedOnce") is True

    row.locator("button.approve").click()
    thread.join(WAIT)
    assert "returned_at" in outcome, "the agent call did not return after the click"
    click_to_return_ms = outcome["returned_at_ms"] - page.evaluate("window.clickedAtMs")

    decision = outcome["decision"]
    assert decision.status == "approved"
    assert decision.decided_by == "alice"
    page.locator("#messages", has_text="The decision was sent to the agent").wait_for(timeout=WAIT * 1000)
    wait_for(lambda: page.locator("tr", has_text="Deploy release 7").count() == 0, timeout=WAIT)
    print(
        f"\nobserver browser loop: request appeared after {appeared_s * 1000:.0f} ms; "
        f"click to agent return {click_to_return_ms:.1f} ms"
    )
