"""The web console at /ui/instances, in a real browser (Debian's chromium driven by Playwright)
against a real server, and its security headers."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from app.routes.ui import UI_DIR
from tests.receiver import Receiver
from tests.server import ADMIN_EMAIL, ADMIN_PASSWORD, Api, Server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}

# The console is the same page whatever stores the data, and the API under it runs on both
# providers in the other end-to-end modules: one browser run (on SQLite) keeps CI short.
pytestmark = pytest.mark.sqlite_only("the browser test drives the UI once")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = (
            f"Debian's chromium is not installed at {CHROMIUM}; `make test` installs it as root"
        )
        if os.geteuid() == 0:
            pytest.fail(reason)  # CI runs as root: the browser test must run there
        pytest.skip(reason + " (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser: Browser, server: Server, **options: object) -> tuple[Page, list[str]]:
    """A fresh browser context (own sessionStorage); page errors and console errors collected,
    so that a script error or a Content-Security-Policy violation fails the test."""
    context = browser.new_context(base_url=server.url, **options)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None
    )
    return page, problems


def sign_in(page: Page, password: str = ADMIN_PASSWORD) -> None:
    page.goto("/ui/")
    page.fill("#signin-form [name=email]", ADMIN_EMAIL)
    page.fill("#signin-form [name=password]", password)
    page.click("#signin-form button[type=submit]")


def expected_console_errors(problems: list[str]) -> list[str]:
    # The browser logs every non-2xx fetch; the ones the story provokes on purpose are fine.
    return [p for p in problems if not re.search(r"status of (400|401|404|409)", p)]


def test_the_console_story(browser: Browser, server: Server, admin: Api) -> None:
    page, problems = open_page(browser, server, viewport={"width": 1280, "height": 900})
    receiver = Receiver(status=500)

    # A wrong password is refused with the API's own message; the right one signs in.
    sign_in(page, password="not-the-password")
    expect(page.locator("#signin-form [data-error]")).to_have_text("Wrong e-mail or password")
    sign_in(page)
    expect(page.locator("#whoami")).to_have_text(ADMIN_EMAIL)
    assert page.url.endswith("/ui/instances")
    storage = page.evaluate("[Object.keys(sessionStorage), Object.keys(localStorage)]")
    assert storage == [["token"], []]

    # Create a sandbox instance: its page opens with the QR code drawn as an image.
    page.fill("#create-form [name=name]", "Browser shop")
    page.select_option("#create-form [name=engine]", "sandbox")
    page.click("#create-form button[type=submit]")
    expect(page.locator("#detail-name")).to_have_text("Browser shop")
    qr = page.locator("#qr")
    expect(qr).to_be_visible()
    expect(qr).to_have_attribute("src", re.compile(r"^blob:"))
    assert page.evaluate("document.querySelector('#qr').naturalWidth") > 100
    instance_id = page.url.split("/")[-2]

    # Reconnecting before a scan brings a new QR code: the image is redrawn by itself.
    first_code, first_image = qr.get_attribute("data-code"), qr.get_attribute("src")
    page.click("#reconnect")
    expect(qr).not_to_have_attribute("data-code", first_code or "")
    expect(qr).to_have_attribute("data-code", re.compile(r"^sandbox@"))
    assert qr.get_attribute("src") != first_image

    # Pairing codes are for whatsmeow: the form says so instead of failing silently.
    page.fill("#pairing-form [name=phone]", "15550000009")
    page.click("#pairing-form button[type=submit]")
    expect(page.locator("#pairing-form [data-error]")).to_contain_text("need the whatsmeow engine")

    # The phone scans (through the sandbox route, outside the page): the page sees it by itself.
    answer = admin.http.post(
        f"/api/sandbox/instances/{instance_id}/scan", json={"phone": "15550004001"}
    )
    assert answer.status_code == 200, answer.text
    expect(page.locator("#detail-status")).to_have_text("connected")
    expect(page.locator("#detail-phone")).to_have_text("+15550004001")
    expect(qr).to_be_hidden()

    # Send a test message and see it in the chat history.
    page.click("#tabs a[data-tab=messages]")
    page.fill("#send-form [name=phone]", "15550004002")
    page.fill("#send-form [name=message]", "hello from the browser")
    page.click("#send-form button[type=submit]")
    expect(page.locator("#chat li.out .text")).to_have_text(["hello from the browser"])
    expect(page.locator("#chat-with")).to_have_text("with +15550004002")

    # Point the webhook at a receiver that always answers 500, with no retries.
    page.click("#tabs a[data-tab=settings]")
    page.fill("#settings-form [name=webhookUrl]", receiver.url)
    page.check("#settings-form [name=webhookEnabled]")
    page.fill("#settings-form [name=maxRetries]", "0")
    page.fill("#settings-form [name=retryInterval]", "10")
    page.click("#settings-form button[type=submit]")
    expect(page.locator("#settings-form [data-ok]")).to_be_visible()

    # A message sent now cannot be delivered: the failed delivery shows up, live.
    page.click("#tabs a[data-tab=messages]")
    page.fill("#send-form [name=message]", "this one fails to reach the webhook")
    page.click("#send-form button[type=submit]")
    expect(page.locator("#chat li.out")).to_have_count(2)
    page.click("#tabs a[data-tab=webhooks]")
    failed = page.locator("#deliveries tbody tr[data-status=failed]", has_text="message_sent")
    expect(failed.first).to_be_visible()
    expect(failed.first).to_contain_text("HTTP 500")

    # The receiver is fixed; replaying the failed delivery gets it there.
    receiver.status = 200
    failed.first.get_by_role("button", name="Replay").click()
    expect(page.locator("#replay-result")).to_contain_text("Replaying 1 event")
    delivered = page.locator("#deliveries tbody tr[data-status=delivered]", has_text="(replay)")
    expect(delivered.first).to_be_visible()
    assert any(r.headers.get("x-webhook-replay") == "true" for r in receiver.received)

    # The activity log records the failure; the usage chart counts the two sends today.
    page.click("#tabs a[data-tab=activity]")
    expect(page.locator("#activity li", has_text="webhook_failed").first).to_be_visible()
    page.click("#tabs a[data-tab=usage]")
    expect(page.locator("#instance-chart rect.bar.sent title", has_text=": 2 sent")).to_have_count(
        1
    )

    # Someone writes in: the contact appears, and its chat opens from the list.
    answer = admin.http.post(
        f"/api/sandbox/instances/{instance_id}/inbound",
        json={"from": "15557770000", "message": "hi shop", "pushName": "Zed"},
    )
    assert answer.status_code == 200, answer.text
    page.click("#tabs a[data-tab=contacts]")
    page.locator("#contacts li", has_text="Zed").get_by_role("button", name="Chat").click()
    expect(page.locator("#chat li.in .text")).to_have_text(["hi shop"])

    # The user's usage and, for an administrator, the users and the system.
    page.click("#nav a[href='#/usage']")
    expect(page.locator("#user-chart svg")).to_be_visible()
    expect(
        page.locator("#user-instances-chart title", has_text="Browser shop: 2 sent")
    ).to_have_count(1)
    page.click("#nav-admin")
    expect(page.locator("#users tbody tr", has_text=ADMIN_EMAIL)).to_have_count(1)
    expect(page.locator("#system-stats")).to_contain_text("Connected")

    # Delete it (after confirming): back to a list without it.
    page.goto(f"/ui/instances#/instances/{instance_id}/settings")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete")
    expect(page.locator("#instance-list li", has_text="Browser shop")).to_have_count(0)
    receiver.close()
    assert expected_console_errors(problems) == []


def test_a_phone_sized_screen_can_pair_an_instance(browser: Browser, server: Server) -> None:
    page, problems = open_page(browser, server, viewport=PHONE, is_mobile=True, has_touch=True)
    sign_in(page)
    page.fill("#create-form [name=name]", "Pocket")
    page.click("#create-form button[type=submit]")
    expect(page.locator("#qr")).to_be_visible()
    page.click("#scan-form button[type=submit]")
    expect(page.locator("#detail-status")).to_have_text("connected")

    # The list fits the screen: nothing wider than the phone, every entry tappable.
    page.click(".brand")
    entry = page.locator("#instance-list li", has_text="Pocket")
    expect(entry).to_contain_text("connected")
    box = entry.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    entry.locator("a").tap()
    expect(page.locator("#detail-name")).to_have_text("Pocket")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert expected_console_errors(problems) == []


def test_the_console_sends_strict_security_headers(server: Server) -> None:
    client = server.client()
    for path in ("/ui/instances", "/ui/static/js/main.js", "/ui/static/console.css"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
        assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
    assert "javascript" in client.get("/ui/static/js/main.js").headers["content-type"]
    for path in ("/ui", "/ui/"):
        answer = client.get(path)
        assert answer.status_code in (302, 307) and answer.headers["location"] == "/ui/instances"
    missing = client.get("/ui/static/nothing.js")
    assert missing.status_code == 404


def test_the_page_has_no_inline_code_and_no_secrets() -> None:
    html = (UI_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert not re.search(r"\sstyle=", html), "inline style"
    scripts = " ".join(p.read_text() for p in (UI_DIR / "js").glob("*.js"))
    assert "localStorage" not in scripts
    assert "sessionStorage.setItem(TOKEN" in scripts


def test_a_cloud_message_that_failed_after_acceptance_shows_why(
    browser: Browser, server: Server, admin: Api
) -> None:
    from tests.fake_graph import OUTSIDE_WINDOW_NUMBER, PHONE_NUMBER_ID, TOKEN, FakeGraph, sign

    graph = FakeGraph()
    try:
        cloud = {
            "phoneNumberId": PHONE_NUMBER_ID,
            "accessToken": TOKEN,
            "appSecret": "app-secret",
            "verifyToken": "verify",
            "graphBaseUrl": graph.url,
        }
        instance = admin.create_instance("Cloud shop", engine="cloud", cloud=cloud)["id"]
        page, problems = open_page(browser, server, viewport={"width": 1280, "height": 900})
        sign_in(page)
        page.goto(f"/ui/instances#/instances/{instance}/messages")
        expect(page.locator("#detail-status")).to_have_text("connected")
        page.fill("#send-form [name=phone]", OUTSIDE_WINDOW_NUMBER)
        page.fill("#send-form [name=message]", "are you still there?")
        page.click("#send-form button[type=submit]")
        expect(page.locator("#chat li.out .text")).to_have_text(["are you still there?"])
        # Meta took it, then fails it by webhook: the chat says why, by itself.
        raw, headers = sign("app-secret", graph.outbox.pop())
        delivered = server.client().post(
            f"/api/cloud/{instance}/webhook", content=raw, headers=headers
        )
        assert delivered.status_code == 200, delivered.text
        expect(page.locator("#chat li.out .failure")).to_contain_text(
            "Re-engagement message (code 131047)"
        )
        assert expected_console_errors(problems) == []
    finally:
        graph.close()
