"""The web console at /ui/instances, in a real browser (Debian's chromium driven by Playwright)
against a real server: a fleet of 60 sandbox instances on a desktop-sized and a phone-sized
screen, an accessibility scan (axe-core) of every view, and the page's security headers.

Set CONSOLE_SCREENSHOTS=<directory> to keep a screenshot of each main view at both sizes
(the README's come from here)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from app.routes.ui import UI_DIR
from tests.local_http import LocalHttp, QuietHandler
from tests.receiver import Receiver
from tests.server import ADMIN_EMAIL, ADMIN_PASSWORD, Api, Server, running_server, wait_until

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
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
FLEET = 60
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS")

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


class Fleet:
    """60 sandbox instances in the states an operator meets: 34 connected, 20 waiting for
    a scan, 6 logged out; one of the connected has a webhook that failed twice."""

    def __init__(self, admin: Api) -> None:
        self.admin = admin
        self.ids: dict[str, str] = {}
        for n in range(FLEET):
            name = f"Fleet {n:02d}"
            self.ids[name] = admin.create_instance(name)["id"]
        self.connected = [f"Fleet {n:02d}" for n in range(34)]
        self.waiting = [f"Fleet {n:02d}" for n in range(34, 54)]
        self.logged_out = [f"Fleet {n:02d}" for n in range(54, FLEET)]
        for name in self.connected + self.logged_out:
            admin.pair(self.ids[name], f"1555{int(name[-2:]):07d}")
        for name in self.logged_out:
            answer = admin.http.post(f"/api/instances/{self.ids[name]}/logout")
            assert answer.status_code == 200, answer.text
        self.receiver = Receiver(status=500)
        hooked = self.ids["Fleet 00"]
        answer = admin.http.put(
            f"/api/instances/{hooked}",
            json={
                "webhookUrl": self.receiver.url,
                "webhookEnabled": True,
                "webhookSettings": {"maxRetries": 0, "retryInterval": 10},
            },
        )
        assert answer.status_code == 200, answer.text
        for text in ("first", "second"):
            assert admin.send(hooked, "15550009999", text).status_code == 200
        wait_until(lambda: len(self.failed(hooked)) == 2, timeout=15)

    def failed(self, instance_id: str) -> list[dict[str, Any]]:
        answer = self.admin.http.get(
            f"/api/instances/{instance_id}/webhooks/outcomes?status=failed"
        )
        return answer.json()["outcomes"]


@pytest.fixture(scope="module")
def fleet(server: Server, admin: Api) -> Iterator[Fleet]:
    made = Fleet(admin)
    yield made
    made.receiver.close()


def new_context(browser: Browser, server: Server, viewport: dict[str, int]) -> BrowserContext:
    phone = viewport == PHONE
    context = browser.new_context(
        base_url=server.url,
        viewport=viewport,
        is_mobile=phone,
        has_touch=phone,  # type: ignore[arg-type]
    )
    context.set_default_timeout(10_000)
    return context


def open_page(context: BrowserContext) -> tuple[Page, list[str]]:
    """A page whose script errors and console errors (a Content-Security-Policy violation
    among them) are collected, so that the test fails on them."""
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


def unexpected(problems: list[str]) -> list[str]:
    # The browser logs every non-2xx fetch; the ones a story provokes on purpose are fine.
    return [p for p in problems if not re.search(r"status of (400|401|403|404|409)", p)]


def accessible(page: Page, view: str) -> None:
    """axe-core (WCAG 2.1 A and AA rules) finds nothing serious or critical on the page."""
    results = Axe().run(
        page,
        options={
            "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}
        },
    )
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"{view}: {serious}"


def shoot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def rows(page: Page) -> Any:
    return page.locator("#fleet tbody tr:not([hidden])")


def row(page: Page, name: str) -> Any:
    return page.locator("#fleet tbody tr", has=page.get_by_role("link", name=name, exact=True))


def open_chat(page: Page, phone: str) -> None:
    page.fill("#new-chat-form [name=phone]", phone)
    page.click("#new-chat-form button[type=submit]")
    expect(page.locator("#send-form")).to_be_visible()


def test_a_fleet_on_a_desktop(browser: Browser, server: Server, admin: Api, fleet: Fleet) -> None:
    context = new_context(browser, server, DESKTOP)
    page, problems = open_page(context)
    sign_in(page)
    expect(page.locator("#whoami")).to_have_text(ADMIN_EMAIL)
    expect(page).to_have_title("Instances · WhatsApp API")
    expect(page.locator("#nav a[aria-current=page]")).to_have_text("Instances")
    expect(page.locator("link[rel=icon]")).to_have_attribute("href", "/ui/static/icon.svg")
    # The sign-in is an HttpOnly cookie: nothing is kept where a script could read it.
    assert page.evaluate("[sessionStorage.length, localStorage.length, document.cookie]") == [
        0,
        0,
        "",
    ]

    # The whole fleet, problems first, with a summary whose counts are filters.
    expect(rows(page)).to_have_count(FLEET)
    summary = page.locator("#summary")
    expect(summary).to_contain_text("34 connected")
    expect(summary).to_contain_text("20 waiting for a scan")
    expect(summary).to_contain_text("6 logged out")
    expect(rows(page).first).to_contain_text("Logged out")
    # A failing instance says why, on its row.
    expect(row(page, fleet.logged_out[0]).locator(".reason")).not_to_be_empty()
    expect(row(page, "Fleet 00").locator(".hooks")).to_have_text("2")
    shoot(page, "fleet-desktop")
    accessible(page, "fleet")

    # Search by name, then by phone.
    page.fill("#search", "Fleet 07")
    expect(rows(page)).to_have_count(1)
    page.fill("#search", "15550000012")
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_contain_text("Fleet 12")
    page.fill("#search", "")

    # Filter by state: kept in the URL, and across a reload (the session too).
    summary.get_by_role("button", name="6 logged out").click()
    expect(rows(page)).to_have_count(6)
    assert "state=logged_out" in page.url
    page.reload()
    expect(rows(page)).to_have_count(6)
    expect(summary.get_by_role("button", name="6 logged out")).to_have_attribute(
        "aria-pressed", "true"
    )

    # Focus and typed text survive live updates: a phone scans while the search has focus.
    summary.get_by_role("button", name="6 logged out").click()
    expect(rows(page)).to_have_count(FLEET)
    page.focus("#search")
    page.keyboard.type("Fleet")
    scanned = fleet.waiting.pop()
    fleet.admin.http.post(
        f"/api/sandbox/instances/{fleet.ids[scanned]}/scan", json={"phone": "15558880001"}
    )
    fleet.connected.append(scanned)
    expect(row(page, scanned).locator(".state")).to_have_text("Connected")
    assert page.evaluate("document.activeElement.id") == "search"
    assert page.input_value("#search") == "Fleet"
    # ... and so does a focused checkbox.
    checkbox = row(page, fleet.waiting[0]).locator("input[type=checkbox]")
    checkbox.focus()
    scanned = fleet.waiting.pop()
    fleet.admin.http.post(
        f"/api/sandbox/instances/{fleet.ids[scanned]}/scan", json={"phone": "15558880002"}
    )
    fleet.connected.append(scanned)
    expect(row(page, scanned).locator(".state")).to_have_text("Connected")
    expect(checkbox).to_be_focused()
    page.fill("#search", "")

    # Bulk reconnect of the instances waiting for a scan, behind a confirmation that counts.
    waiting = len(fleet.waiting)
    summary.get_by_role("button", name=f"{waiting} waiting for a scan").click()
    expect(rows(page)).to_have_count(waiting)
    page.check("#select-all")
    expect(page.locator("#selected-count")).to_have_text(f"{waiting} instances selected")
    page.click("[data-bulk=reconnect]")
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text(f"Reconnect {waiting} instances?")
    accessible(page, "bulk confirmation")
    dialog.get_by_role("button", name=f"Reconnect {waiting} instances").click()
    expect(page.locator("#bulk-result")).to_have_text(
        f"{waiting} of {waiting} instances reconnected."
    )
    reconnects = [
        e
        for name in fleet.waiting
        for e in admin.http.get(
            f"/api/instances/{fleet.ids[name]}/activity?actions=reconnect_requested"
        ).json()["logs"]
    ]
    assert len(reconnects) == waiting
    assert unexpected(problems) == []
    context.close()


def test_an_instance_page_and_failed_webhooks_replayed_once(
    browser: Browser, server: Server, admin: Api, fleet: Fleet
) -> None:
    context = new_context(browser, server, DESKTOP)
    page, problems = open_page(context)
    sign_in(page)
    hooked = fleet.ids["Fleet 00"]

    # The webhook tab: URL, on/off, the two failures unresolved.
    page.goto(f"/ui/instances#/instances/{hooked}/webhooks")
    expect(page).to_have_title("Fleet 00 · Webhooks · WhatsApp API")
    summary = page.locator("#webhook-summary")
    expect(summary).to_contain_text(fleet.receiver.url)
    expect(summary).to_contain_text("Failed, unresolved2")
    expect(page.locator("#deliveries tbody tr[data-status=failed]")).to_have_count(2)
    shoot(page, "webhooks-desktop")
    accessible(page, "webhooks tab")

    # Fixed receiver: one replay of the unresolved ones, confirmed with their count and URL.
    fleet.receiver.status = 200
    page.get_by_role("button", name="Replay 2 failed deliveries").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text("Replay 2 failed deliveries?")
    expect(dialog).to_contain_text(fleet.receiver.url)
    dialog.get_by_role("button", name="Replay 2 failed deliveries").click()
    expect(page.locator("#replay-result")).to_contain_text("Replaying 2 events")
    recovered = page.locator("#deliveries tbody tr", has_text="failed → recovered by replay")
    expect(recovered).to_have_count(2)
    expect(summary).to_contain_text("Failed, unresolved0")
    expect(page.locator("#replay-failed")).to_be_disabled()
    # Asking again sends nothing twice.
    again = admin.http.post(f"/api/instances/{hooked}/webhooks/replay", json={"failedOnly": True})
    assert again.json()["replaying"] == 0
    replays = [r for r in fleet.receiver.received if r.headers.get("x-webhook-replay") == "true"]
    assert sorted(r.json["data"]["body"] for r in replays) == ["first", "second"]
    assert len({r.headers["x-webhook-delivery"] for r in replays}) == 2

    # A test event, and what the receiver answered.
    page.click("#send-test")
    expect(page.locator("#replay-result")).to_have_text("Test event delivered: HTTP 200.")
    assert fleet.receiver.received[-1].event == "webhook_test"

    # The activity log filters by kind.
    page.click("#tabs a[data-tab=activity]")
    page.select_option("#activity-kind", "webhooks")
    expect(page.locator("#activity li[data-action=webhook_failed]")).to_have_count(2)
    expect(page.locator("#activity li:not([data-action=webhook_failed])")).to_have_count(0)
    page.select_option("#activity-kind", "connection")
    expect(page.locator("#activity li[data-action=connection_opened]").first).to_be_visible()
    accessible(page, "activity tab")

    # Messages: a new chat with a number, and what was sent in it.
    page.click("#tabs a[data-tab=messages]")
    open_chat(page, "15550004002")
    page.fill("#send-form [name=message]", "hello from the browser")
    page.click("#send-form button[type=submit]")
    expect(page.locator("#chat li.out .text")).to_have_text(["hello from the browser"])
    page.click("#tabs a[data-tab=usage]")
    expect(page.locator("#instance-chart table")).to_be_attached()
    accessible(page, "usage tab")

    # Reconnect says what it came to.
    page.click("#tabs a[data-tab=pair]")
    page.click("#reconnect")
    expect(page.locator("#action-result")).to_contain_text("Reconnect: Connected")

    # The danger zone: Log out asks first (and cancelling changes nothing).
    page.click("#tabs a[data-tab=settings]")
    accessible(page, "settings tab")
    page.click("#logout")
    expect(page.locator("#confirm")).to_contain_text("needs the phone")
    page.locator("#confirm").get_by_role("button", name="Cancel").click()
    expect(page.locator("#detail-status")).to_have_text("Connected")
    # ... and is off for an instance that is not paired.
    page.goto(f"/ui/instances#/instances/{fleet.ids[fleet.waiting[0]]}/settings")
    expect(page.locator("#logout")).to_be_disabled()
    expect(page.locator("#send-form button[type=submit]")).to_be_hidden()
    page.click("#tabs a[data-tab=messages]")
    expect(page.locator("#send-blocked")).to_contain_text("needs a connected instance")
    open_chat(page, "15550004002")
    expect(page.locator("#send-form button[type=submit]")).to_be_disabled()
    # A deleted instance's link clears the page instead of showing the last one's buttons.
    gone = admin.create_instance("Short-lived")["id"]
    assert admin.http.delete(f"/api/instances/{gone}").status_code == 200
    page.goto(f"/ui/instances#/instances/{gone}/pair")
    expect(page.locator("#detail-name")).to_have_text("Instance not found")
    expect(page.locator("#reconnect")).to_be_hidden()
    expect(page.locator("#tabs")).to_be_hidden()
    expect(page).to_have_title("Instance not found · WhatsApp API")
    assert unexpected(problems) == []
    context.close()


def test_the_chat_panes(browser: Browser, server: Server, admin: Api, fleet: Fleet) -> None:
    """Two fleet instances that message each other (the sandbox delivers between its own
    numbers as WhatsApp does): recent chats, the conversation, load older, reply, react,
    edits, deletions, a location, a poll, groups, and drafts kept to their instance."""
    a, b = fleet.ids["Fleet 01"], fleet.ids["Fleet 02"]
    a_phone, b_phone = "15550000001", "15550000002"
    sent = [admin.send(b, a_phone, f"older {n:02d}") for n in range(31)]
    assert all(r.status_code == 200 for r in sent), sent[-1].text
    doomed = sent[5].json()["id"]
    hello = admin.send(b, a_phone, "hello from B").json()["id"]

    def chats() -> list[dict[str, Any]]:
        return admin.http.get(f"/api/instances/{a}/chats").json()["chats"]

    wait_until(lambda: chats() and chats()[0]["unreadCount"] == 32)
    context = new_context(browser, server, DESKTOP)
    page, problems = open_page(context)
    sign_in(page)
    page.goto(f"/ui/instances#/instances/{a}/messages")
    expect(page).to_have_title("Fleet 01 · Messages · WhatsApp API")

    # Recent chats with the last message and the unread count.
    item = page.locator("#chats li", has_text="Fleet 02")  # the name B goes by
    expect(item.locator(".chat-last")).to_have_text("hello from B")
    expect(item.locator(".unread")).to_have_text("32")
    item.get_by_role("button").click()
    expect(page.locator("#chat-title")).to_have_text("Fleet 02")

    # The newest at the bottom and in view; opening the chat marks it read.
    bubbles = page.locator("#chat > li")
    expect(bubbles).to_have_count(30)
    expect(bubbles.last.locator(".text")).to_have_text("hello from B")
    expect(bubbles.last).to_be_in_viewport()
    expect(item.locator(".unread")).to_be_hidden()
    wait_until(lambda: chats()[0]["unreadCount"] == 0)
    page.get_by_role("button", name="Load older messages").click()
    expect(bubbles).to_have_count(32)
    expect(bubbles.first.locator(".text")).to_have_text("older 00")
    expect(page.locator("#load-older")).to_be_hidden()

    # Reply to a message, and react to it.
    page.get_by_role("button", name="Reply to “hello from B”").click()
    expect(page.locator("#replying")).to_contain_text("hello from B")
    page.fill("#send-form [name=message]", "a reply from the browser")
    page.click("#send-form button[type=submit]")
    reply = page.locator("#chat li.out", has_text="a reply from the browser")
    expect(reply.locator(".quote")).to_have_text("hello from B")
    expect(page.locator("#replying")).to_be_hidden()
    hello_bubble = page.locator(f"#chat li[data-message-id='{hello}']")
    hello_bubble.get_by_text("React").click()
    hello_bubble.get_by_role("button", name="React 👍 to “hello from B”").click()
    expect(hello_bubble.locator(".reactions")).to_have_text("👍")
    seen_by_b = admin.http.get(f"/api/instances/{b}/chats/{a_phone}/messages?limit=5")
    by_b = {m["messageId"]: m for m in seen_by_b.json()["messages"]}
    assert [r["emoji"] for r in by_b[hello]["reactions"]] == ["👍"]
    assert any(m["quotedMessageId"] == hello for m in by_b.values() if not m["fromMe"])

    # What the other side does shows by itself: an edit, a deletion, a location, a poll.
    edited = admin.http.put(
        f"/api/whatsapp/{b}/messages/{hello}", json={"message": "hello again from B"}
    )
    assert edited.status_code == 200, edited.text
    assert admin.http.delete(f"/api/whatsapp/{b}/messages/{doomed}").status_code == 200
    located = admin.http.post(
        f"/api/whatsapp/{b}/send-location",
        json={"phone": a_phone, "latitude": 52.52, "longitude": 13.405, "name": "Cafe"},
    )
    assert located.status_code == 200, located.text
    polled = admin.http.post(
        f"/api/whatsapp/{b}/send-poll",
        json={"phone": a_phone, "question": "Lunch?", "options": ["pizza", "sushi"]},
    )
    assert polled.status_code == 200, polled.text
    expect(hello_bubble.locator(".text")).to_have_text("hello again from B")
    expect(hello_bubble.locator(".meta")).to_contain_text("edited")
    expect(page.locator(f"#chat li[data-message-id='{doomed}'] .text")).to_have_text(
        "This message was deleted"
    )
    expect(page.locator("#chat li .location")).to_contain_text("Cafe")
    expect(page.locator("#chat li", has_text="Lunch?").locator(".poll li")).to_have_count(2)
    shoot(page, "messages-desktop")
    accessible(page, "chat panes")

    # Groups: the instance's groups with their members, and the group's chat.
    made = admin.http.post(
        f"/api/whatsapp/{a}/groups", json={"subject": "Team", "participants": [b_phone]}
    )
    assert made.status_code in (200, 201), made.text
    page.click("#tabs a[data-tab=groups]")
    group = page.locator("#groups > li", has_text="Team")
    expect(group.locator(".members li")).to_have_count(2)
    accessible(page, "groups tab")
    group.get_by_role("button", name="Open the chat of Team").click()
    expect(page.locator("#chat-title")).to_have_text("Team")

    # A draft stays with its instance: another instance's chat with the same number starts empty.
    item.get_by_role("button").click()
    page.fill("#send-form [name=message]", "half-written")
    page.goto(f"/ui/instances#/instances/{fleet.ids['Fleet 03']}/messages")
    expect(page.locator("#detail-name")).to_have_text("Fleet 03")
    open_chat(page, b_phone)
    expect(page.locator("#send-form [name=message]")).to_have_value("")
    assert unexpected(problems) == []
    context.close()


def test_a_new_instance_offers_what_the_server_runs(
    browser: Browser, server: Server, admin: Api
) -> None:
    context = new_context(browser, server, DESKTOP)
    page, problems = open_page(context)
    sign_in(page)
    page.click("#new-instance")
    engines = page.locator("#create-form [name=engine] option")
    expect(engines).to_have_count(3)
    assert page.input_value("#create-form [name=engine]") == "sandbox"  # DEFAULT_ENGINE
    page.select_option("#create-form [name=engine]", "cloud")
    expect(page.locator("#cloud-fields")).to_be_visible()
    expect(page.locator("#proxy-field")).to_be_hidden()
    accessible(page, "new instance dialog")
    shoot(page, "create-desktop")
    page.select_option("#create-form [name=engine]", "sandbox")
    page.fill("#create-form [name=name]", "Browser shop")
    page.click("#create-form button[type=submit]")
    expect(page.locator("#detail-name")).to_have_text("Browser shop")
    expect(page.locator("#detail-status")).to_have_text("Waiting for QR scan")
    qr = page.locator("#qr")
    expect(qr).to_have_attribute("src", re.compile(r"^blob:"))
    assert page.evaluate("document.querySelector('#qr').naturalWidth") > 100
    expect(page.locator("#pairing-form")).to_be_hidden()  # pairing codes are whatsmeow's
    shoot(page, "pair-desktop")
    accessible(page, "pair tab")
    first = qr.get_attribute("data-code")
    page.click("#reconnect")
    expect(qr).not_to_have_attribute("data-code", first or "")
    page.fill("#scan-form [name=phone]", "15557770123")  # a number no fleet instance has
    page.click("#scan-form button[type=submit]")
    expect(page.locator("#scan-form [data-error]")).to_be_hidden()
    expect(page.locator("#detail-status")).to_have_text("Connected")
    expect(qr).to_be_hidden()
    assert unexpected(problems) == []
    context.close()


def test_the_account_page_and_a_sign_in_shared_by_tabs(
    browser: Browser, server: Server, admin: Api
) -> None:
    email = "console-user@example.com"
    admin.create_user(email, password="first-password-1", firstName="Ada")
    context = new_context(browser, server, DESKTOP)
    page, problems = open_page(context)
    page.goto("/ui/")
    page.fill("#signin-form [name=email]", email)
    page.fill("#signin-form [name=password]", "first-password-1")
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#whoami")).to_have_text(email)
    expect(page.locator("#nav-admin")).to_be_hidden()

    # A second tab is signed in already.
    second, _ = open_page(context)
    second.goto("/ui/instances#/account")
    expect(second.locator("#whoami")).to_have_text(email)
    expect(second).to_have_title("Account · WhatsApp API")
    expect(second.locator("#profile")).to_contain_text("Ada")
    accessible(second, "account")

    # The API key, after the password; then a password change keeps this tab signed in.
    second.fill("#api-key-form [name=password]", "first-password-1")
    second.click("#api-key-form button[name=show]")
    expect(second.locator("#api-key")).to_contain_text("wa_")
    key = second.locator("#api-key").inner_text().split()[-1]
    assert server.client(**{"x-api-key": key}).get("/api/auth/me").json()["email"] == email
    second.fill("#password-form [name=currentPassword]", "first-password-1")
    second.fill("#password-form [name=newPassword]", "second-password-2")
    second.click("#password-form button[type=submit]")
    expect(second.locator("#password-form [data-ok]")).to_be_visible()
    shoot(second, "account-desktop")
    second.fill("#api-key-form [name=password]", "second-password-2")
    second.click("#api-key-form button[name=rotate]")
    expect(second.locator("#api-key")).to_contain_text("New key")
    assert server.client(**{"x-api-key": key}).get("/api/auth/me").status_code == 401

    # Signing out in one tab signs every tab out.
    second.click("#sign-out")
    expect(second.locator("#view-signin")).to_be_visible()
    page.goto("/ui/instances#/usage")
    expect(page.locator("#view-signin")).to_be_visible()
    assert unexpected(problems) == []
    context.close()


def test_administration_and_usage(
    browser: Browser, server: Server, admin: Api, fleet: Fleet
) -> None:
    context = new_context(browser, server, DESKTOP)
    page, problems = open_page(context)
    sign_in(page)
    page.click("#nav a[href='#/usage']")
    expect(page).to_have_title("Usage · WhatsApp API")
    expect(page.locator("#user-instances-chart title", has_text="Fleet 00: 3 sent")).to_have_count(
        1
    )
    expect(page.locator("#user-instances-chart table tbody tr")).to_have_count(FLEET + 1)
    shoot(page, "usage-desktop")
    accessible(page, "usage")
    page.click("#nav-admin")
    expect(page.locator("#users tbody tr", has_text=ADMIN_EMAIL)).to_have_count(1)
    page.fill("#user-form [name=email]", "made-by-admin@example.com")
    page.fill("#user-form [name=password]", "made-password-1")
    page.click("#user-form button[type=submit]")
    made = page.locator("#users tbody tr", has_text="made-by-admin@example.com")
    made.get_by_label("Max instances for made-by-admin@example.com").fill("2")
    made.get_by_role("button", name="Save the limits of made-by-admin@example.com").click()
    expect(page.locator("#users-result")).to_have_text("Limits of made-by-admin@example.com saved.")
    users = admin.http.get("/api/users").json()["users"]
    assert [u["limits"] for u in users if u["email"].startswith("made-by")] == [
        {"maxInstances": 2, "maxMessagesPerDay": None}
    ]
    made.get_by_role("button", name="Deactivate made-by-admin@example.com").click()
    page.locator("#confirm").get_by_role("button", name="Deactivate").click()
    expect(made.locator(".active")).to_have_text("no")
    shoot(page, "admin-desktop")
    accessible(page, "admin")
    # An administrator sees every user's instances, read-only where they are not theirs.
    user = admin.create_user("fleet-owner@example.com")
    owner = Api.login(server, "fleet-owner@example.com", "user-password-1")
    owner.create_instance("Someone else's")
    page.goto("/ui/instances#/instances?all=1")
    other = row(page, "Someone else's")
    expect(page.locator("#fleet tbody tr", has_text="Someone else's")).to_have_count(1)
    expect(page.locator("#fleet tbody tr", has_text="Someone else's")).to_contain_text(
        "owner fleet-owner@example.com"
    )
    expect(other).to_have_count(0)  # no link: instance pages are their owners'
    assert user["email"] == "fleet-owner@example.com"
    assert unexpected(problems) == []
    context.close()


def test_a_phone_sized_screen(browser: Browser, server: Server, fleet: Fleet) -> None:
    context = new_context(browser, server, PHONE)
    page, problems = open_page(context)
    sign_in(page)
    expect(rows(page).nth(FLEET - 1)).to_be_visible()
    wide = "document.documentElement.scrollWidth"
    assert page.evaluate(wide) <= PHONE["width"]
    shoot(page, "fleet-phone")
    accessible(page, "fleet on a phone")
    page.fill("#search", "Fleet 01")
    expect(rows(page)).to_have_count(1)
    box = rows(page).first.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    rows(page).first.get_by_role("link").tap()
    expect(page.locator("#detail-name")).to_have_text("Fleet 01")
    assert page.evaluate(wide) <= PHONE["width"]
    shoot(page, "instance-phone")
    accessible(page, "instance on a phone")
    page.click("#tabs a[data-tab=messages]")
    open_chat(page, "15550000002")
    page.fill("#send-form [name=message]", "from a phone")
    page.click("#send-form button[type=submit]")
    expect(page.locator("#chat li.out .text").last).to_have_text("from a phone")
    expect(page.locator("#chat li.out").last).to_be_in_viewport()
    assert page.evaluate(wide) <= PHONE["width"]
    shoot(page, "messages-phone")
    accessible(page, "chat panes on a phone")
    page.click("#tabs a[data-tab=webhooks]")
    assert page.evaluate(wide) <= PHONE["width"]
    page.click("#nav a[href='#/account']")
    expect(page.locator("#profile")).to_contain_text(ADMIN_EMAIL)
    assert page.evaluate(wide) <= PHONE["width"]
    shoot(page, "account-phone")
    accessible(page, "account on a phone")
    page.click("#nav a[href='#/usage']")
    expect(page.locator("#user-instances-chart svg")).to_be_visible()
    assert page.evaluate(wide) <= PHONE["width"]
    # Chart labels keep a readable size on a narrow screen.
    size = page.evaluate("getComputedStyle(document.querySelector('#user-chart .tick')).fontSize")
    ratio = page.evaluate(
        "(() => { const s = document.querySelector('#user-chart svg');"
        " return s.getBoundingClientRect().width / s.viewBox.baseVal.width; })()"
    )
    assert float(size.rstrip("px")) * ratio >= 12
    shoot(page, "usage-phone")
    accessible(page, "usage on a phone")
    page.click("#sign-out")
    expect(page.locator("#view-signin")).to_be_visible()
    accessible(page, "sign-in")
    assert unexpected(problems) == []
    context.close()


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
        context = new_context(browser, server, DESKTOP)
        page, problems = open_page(context)
        sign_in(page)
        expect(page.locator("#whoami")).to_have_text(ADMIN_EMAIL)
        page.goto(f"/ui/instances#/instances/{instance}/messages")
        expect(page.locator("#detail-status")).to_have_text("Connected")
        open_chat(page, OUTSIDE_WINDOW_NUMBER)
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
        assert unexpected(problems) == []
        context.close()
    finally:
        graph.close()


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
    assert client.get("/ui/static/icon.svg").headers["content-type"] == "image/svg+xml"
    for path in ("/ui", "/ui/"):
        answer = client.get(path)
        assert answer.status_code in (302, 307) and answer.headers["location"] == "/ui/instances"
    missing = client.get("/ui/static/nothing.js")
    assert missing.status_code == 404


def test_the_page_has_no_inline_code_and_keeps_no_credentials() -> None:
    html = (UI_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert not re.search(r"\sstyle=", html), "inline style"
    scripts = " ".join(p.read_text() for p in (UI_DIR / "js").glob("*.js"))
    # The session is an HttpOnly cookie; the page stores nothing and holds no token.
    for storage in ("localStorage", "sessionStorage", "document.cookie", "Authorization"):
        assert storage not in scripts, storage


class OtherSite:
    """Pages of an attacker's own, served on 127.0.0.1 beside the console. Cookies ignore the
    port, so as `sibling` (http://127.0.0.1:<port>) they come from the console's own site and
    the browser sends its SameSite=Strict cookie with what they ask; as `cross_site`
    (http://localhost:<port>) they come from another site."""

    def __init__(self, pages: dict[str, str]) -> None:
        class Handler(QuietHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path, "").encode()
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.http = LocalHttp(Handler)
        self.sibling = self.http.url
        self.cross_site = self.http.url.replace("127.0.0.1", "localhost")

    def close(self) -> None:
        self.http.close()


@pytest.mark.drill_cases("security cases")
def test_a_link_on_a_sibling_site_cannot_send(
    browser: Browser, server: Server, admin: Api, fleet: Fleet
) -> None:
    """The simple send answers GET too (for low-code tools); an image on a page of the
    console's own site makes the signed-in browser GET it with the session cookie and no
    CSRF token, and must send nothing."""
    instance = fleet.ids["Fleet 33"]
    link = f"/api/whatsapp-simple/{instance}/send?phone=15550004242&message=sent+by+a+link"
    site = OtherSite({"/image": f'<img src="{server.url}{link}" alt="">'})
    try:
        context = new_context(browser, server, DESKTOP)
        page, _ = open_page(context)
        sign_in(page)
        expect(page.locator("#whoami")).to_have_text(ADMIN_EMAIL)
        page.goto(f"{site.sibling}/image")  # the image is answered once the page has loaded
        # A message sent afterwards: once it shows, one sent by the link would show before it.
        assert admin.send(instance, "15550004242", "sent by the API").status_code == 200

        def texts() -> list[str]:
            chat = admin.http.get(f"/api/instances/{instance}/chats/15550004242/messages")
            return [m["content"] for m in chat.json()["messages"]]

        wait_until(lambda: "sent by the API" in texts())
        assert texts() == ["sent by the API"]
        context.close()
    finally:
        site.close()


@pytest.mark.drill_cases("security cases")
def test_another_site_cannot_sign_the_browser_in(
    browser: Browser, server: Server, admin: Api
) -> None:
    """Login CSRF: a form on another site that submits itself as text/plain (the one body a
    form sends that can spell JSON: the field's name is the attacker's e-mail and password
    up to the `=`) must not sign the browser in as the attacker, whose account would then get
    what the victim pairs or types next."""
    admin.create_user("mallory@example.com", password="mallory-password=")
    form = (
        f'<form method="post" enctype="text/plain" action="{server.url}/api/auth/session">'
        """<input type="hidden" name='{"email":"mallory@example.com","password":"mallory-password'"""
        """ value='"}'></form><script>document.forms[0].submit()</script>"""
    )
    site = OtherSite({"/form": form})
    try:
        context = new_context(browser, server, DESKTOP)
        page, _ = open_page(context)
        sign_in(page)
        expect(page.locator("#whoami")).to_have_text(ADMIN_EMAIL)
        with page.expect_response(f"{server.url}/api/auth/session") as posted:
            page.goto(f"{site.cross_site}/form")
        assert posted.value.status == 415
        page.goto("/ui/")
        expect(page.locator("#whoami")).to_have_text(ADMIN_EMAIL)
        context.close()
    finally:
        site.close()


@pytest.mark.drill_cases("security cases")
def test_what_strangers_write_shows_as_text(
    browser: Browser, server: Server, admin: Api, fleet: Fleet
) -> None:
    """Strangers choose most of what the chat panes show: message bodies, push names, poll
    questions and options, places, contact cards, captions, the quoted text. Markup in any
    of them shows as the text it is: no element is made and no script runs (the content
    security policy is the second wall, not the first)."""
    a, b = fleet.ids["Fleet 04"], fleet.ids["Fleet 05"]
    a_phone = "15550000004"
    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    first = admin.send(b, a_phone, f"text {hostile}").json()["id"]
    for path, body in [
        ("send-location", {"latitude": 1, "longitude": 2, "name": hostile, "address": hostile}),
        ("send-poll", {"question": f"poll {hostile}", "options": [f"yes {hostile}", "no"]}),
        ("send-contact", {"contacts": [{"name": f"card {hostile}", "phone": "15550009999"}]}),
        ("send", {"message": f"reply {hostile}", "quotedMessageId": first}),
    ]:
        answer = admin.http.post(f"/api/whatsapp/{b}/{path}", json={"phone": a_phone, **body})
        assert answer.status_code == 200, answer.text
    captioned = admin.http.post(
        f"/api/whatsapp/{b}/send-file",
        data={"phone": a_phone, "caption": f"caption {hostile}"},
        files={"file": ("note.txt", b"a note", "text/plain")},
    )
    assert captioned.status_code == 200, captioned.text
    stranger = admin.http.post(
        f"/api/sandbox/instances/{a}/inbound",
        json={"from": "15550004343", "message": f"stranger {hostile}", "pushName": hostile},
    )
    assert stranger.status_code == 200, stranger.text

    context = new_context(browser, server, DESKTOP)
    page, problems = open_page(context)
    sign_in(page)
    page.goto(f"/ui/instances#/instances/{a}/messages")
    page.locator("#chats li", has_text="Fleet 05").get_by_role("button").click()
    # Text, poll question and option, place, card, caption and reply; the quote is cut short.
    expect(page.locator("#chat").get_by_text(hostile)).to_have_count(7)
    expect(page.locator("#chat .quote")).to_have_text(f"text {hostile}"[:57] + "…")
    page.locator("#chats li", has_text=hostile).get_by_role("button").click()
    expect(page.locator("#chat-title")).to_have_text(hostile)
    expect(page.locator("#chat .text")).to_have_text(f"stranger {hostile}")
    assert page.locator("[data-panel=messages] :is(img, script)").count() == 0
    assert page.evaluate("window.pwned") is None
    assert unexpected(problems) == []
    context.close()


@pytest.mark.drill_cases("security cases")
def test_an_origin_that_cors_allows_gets_no_console_session(
    browser: Browser, tmp_path: Path
) -> None:
    """CORS_ORIGIN lets the scripts of another origin call the API with credentials of their
    own. Were the browser's cookies let through too, a page there (or a script injected
    into it) on the console's site would read a signed-in console's CSRF token and act as
    its user."""
    site = OtherSite({"/": "<p>an app that calls the API</p>"})
    try:
        with running_server(tmp_path, CORS_ORIGIN=site.sibling) as server:
            context = new_context(browser, server, DESKTOP)
            page, _ = open_page(context)
            sign_in(page)
            expect(page.locator("#whoami")).to_have_text(ADMIN_EMAIL)
            page.goto(f"{site.sibling}/")
            read = page.evaluate(
                """url => fetch(url + "/api/auth/session", {credentials: "include"})
                    .then((r) => r.json()).then((b) => b.csrfToken, () => "refused")""",
                server.url,
            )
            assert read == "refused"
            # What CORS_ORIGIN is for still works: a sign-in of its own, then a token.
            token = page.evaluate(
                """([url, email, password]) => fetch(url + "/api/auth/login", {
                    method: "POST", headers: {"Content-Type": "application/json"},
                    body: JSON.stringify({email, password}),
                  }).then((r) => r.json()).then((b) => b.token)""",
                [server.url, ADMIN_EMAIL, ADMIN_PASSWORD],
            )
            assert token
            context.close()
    finally:
        site.close()
