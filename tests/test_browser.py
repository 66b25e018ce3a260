"""The admin flow in a real Chromium, driven by Playwright, against a live
server, with mail going through a real SMTP server on loopback.

Debian's chromium package provides the browser (``.ci/run`` installs it);
Playwright's own browser download is not used. Screenshots of the pages go
to the folder that the test run prints at its end.
"""

import datetime
from pathlib import Path

import pytest
from django.db import connections
from post_office.models import EmailTemplate

from tests.factories import DomainFactory, IssueFactory, OrganizationFactory
from weekly_reports.models import Subscription
from weekly_reports.weeks import IsoWeek

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's chromium is missing: apt-get install chromium "
        "(.ci/run installs it).",
    ),
    # The live server reads what the test writes, so each test commits; the
    # serialized rollback brings back the template that migration 0002 made.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

WEEK = IsoWeek(2026, 48)
IN_WEEK = WEEK.start + datetime.timedelta(days=2)
NEW_SUBJECT = "This week at {{ organization }}: {{ opened_this_week }} new bugs"


@pytest.fixture
def browser(monkeypatch):
    """Chromium, started after the test database is set up and stopped
    before it is flushed.

    Playwright's synchronous API keeps an event loop running in this thread
    while it is open. Django then refuses database calls unless told that
    the thread does nothing asynchronous (it does not), and hands out
    connections of their own, which are closed here before Playwright
    stops; pytest-django's own set-up and flush must not see that loop.
    """
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()
        connections.close_all()


@pytest.fixture
def live_site(settings, live_server):
    """Links in the mail point at the live server."""
    settings.SITE_URL = live_server.url
    settings.DEFAULT_FROM_EMAIL = "OWASP BLT <reports@blt.example>"
    settings.WEEKLY_REPORTS = {"LIST_ID_DOMAIN": "weekly-reports.blt.example"}
    return live_server


@pytest.fixture
def open_page(browser, live_site):
    """Open a page in a browser context of its own (its own cookies); every
    request it makes must stay on the live server."""
    contexts, foreign = [], []

    def open_page(width=1600, height=1000):
        context = browser.new_context(
            base_url=live_site.url, viewport={"width": width, "height": height}
        )
        contexts.append(context)
        page = context.new_page()
        page.on(
            "request",
            lambda request: (
                request.url.startswith(("http:", "https:"))
                and not request.url.startswith(live_site.url)
                and foreign.append(request.url)
            ),
        )
        return page

    yield open_page

    for context in contexts:
        context.close()
    assert foreign == [], "requests left the live server"


@pytest.fixture
def admin_page(open_page, admin_user):
    """A page logged in to the admin through its login form."""
    page = open_page()
    page.goto("/admin/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    return page


@pytest.fixture
def domains():
    """Three domains with a bug each in the week."""
    made = []
    for name, organization in [
        ("acme.example", "Acme & Sons"),
        ("globex.example", "Globex"),
        ("initech.example", "Initech"),
    ]:
        domain = DomainFactory(
            name=name,
            email=f"security@{name}",
            organization=OrganizationFactory(name=organization),
        )
        IssueFactory(domain=domain, created=IN_WEEK, description=f"Bug on {name}")
        made.append(domain)
    return made


def open_template(page):
    template = EmailTemplate.objects.get(name="weekly_report", language="")
    page.goto(f"/admin/post_office/emailtemplate/{template.pk}/change/")


def preview_frame(page):
    return page.frame_locator("iframe[name=weekly-report-preview]")


def save_subject(page, subject):
    open_template(page)
    page.get_by_label("Subject").fill(subject)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist .success")).to_contain_text("was changed")


def unsubscribe_link(message):
    header = "".join(message["List-Unsubscribe"].split())
    return header.removeprefix("<").removesuffix(">")


def test_editor_previews_the_unsaved_subject_then_saves_it(
    admin_page, domains, screenshot_dir
):
    page = admin_page
    open_template(page)
    page.get_by_label("Subject").fill(NEW_SUBJECT)
    page.get_by_label("Domain").fill("acme.example")
    page.get_by_label("Week").fill(str(WEEK))

    page.get_by_role("button", name="Preview", exact=True).click()

    frame = preview_frame(page)
    expect(frame.locator(".weekly-report-subject")).to_have_text(
        "This week at Acme & Sons: 1 new bugs"
    )
    html_part = frame.frame_locator("iframe.weekly-report-html")
    expect(html_part.get_by_text("Bug on acme.example")).to_be_visible()
    assert EmailTemplate.objects.get(name="weekly_report").subject != NEW_SUBJECT
    page.locator(".weekly-report-preview-controls").evaluate(
        "controls => controls.scrollIntoView({block: 'start'})"
    )
    page.screenshot(path=screenshot_dir / "template-preview.png")
    # Scrolled this far, a click that Playwright scrolls back up to lands in
    # the preview's frame (Chromium's hit testing lags behind the scroll);
    # from the top of the page it reaches the button.
    page.evaluate("window.scrollTo(0, 0)")

    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.locator(".messagelist .success")).to_contain_text("was changed")
    assert EmailTemplate.objects.get(name="weekly_report").subject == NEW_SUBJECT


def test_send_me_a_test_mails_the_preview_to_the_editor(
    admin_page, domains, smtp_server
):
    page = admin_page
    open_template(page)
    page.get_by_label("Subject").fill(NEW_SUBJECT)
    page.get_by_label("Domain").fill("globex.example")

    page.get_by_role("button", name="Send me a test").click()

    expect(preview_frame(page).locator(".messagelist .success")).to_have_text(
        f"Sent this preview (globex.example, {IsoWeek.last_complete()}) to "
        "admin@example.com."
    )
    (received,) = smtp_server.received
    assert received.rcpt_tos == ["admin@example.com"]
    assert received.message["Subject"].startswith("This week at Globex: ")


def test_domain_turned_off_in_the_list_gets_nothing_and_the_others_the_new_subject(
    admin_page, domains, smtp_server, run_weekly, screenshot_dir
):
    page = admin_page
    save_subject(page, NEW_SUBJECT)
    page.goto("/admin/weekly_reports/reportdomain/")

    page.get_by_role("button", name="Turn the report off: globex.example").click()

    expect(page.locator(".messagelist .success")).to_have_text(
        "The weekly report for globex.example is now off."
    )
    expect(
        page.get_by_role("button", name="Turn the report on: globex.example")
    ).to_be_visible()
    page.screenshot(path=screenshot_dir / "domains.png")

    run_weekly("--week", str(WEEK))

    subjects = {
        message.rcpt_tos[0]: message.message["Subject"]
        for message in smtp_server.received
    }
    assert subjects == {
        "security@acme.example": "This week at Acme & Sons: 1 new bugs",
        "security@initech.example": "This week at Initech: 1 new bugs",
    }
    page.goto("/admin/weekly_reports/delivery/")
    skipped = page.get_by_role("row", name="globex.example")
    expect(skipped.locator(".field-status")).to_have_text("skipped")
    expect(skipped.locator(".field-reason_or_error")).to_have_text("unsubscribed")
    page.screenshot(path=screenshot_dir / "deliveries.png")


def test_unsubscribe_link_of_a_received_message_turns_the_domain_off(
    open_page, admin_page, domains, smtp_server, run_weekly, screenshot_dir
):
    run_weekly("--week", str(WEEK))
    (message,) = [m.message for m in smtp_server.to("security@acme.example")]
    recipient = open_page(width=720, height=480)

    recipient.goto(unsubscribe_link(message))
    expect(recipient.get_by_role("heading")).to_have_text(
        "Stop the weekly report for acme.example?"
    )
    recipient.screenshot(path=screenshot_dir / "unsubscribe-confirm.png")
    recipient.get_by_role("button", name="Unsubscribe").click()

    expect(recipient.get_by_role("heading")).to_have_text("You are unsubscribed")
    expect(recipient.get_by_role("button", name="Subscribe again")).to_be_visible()
    recipient.screenshot(path=screenshot_dir / "unsubscribe-done.png")
    subscription = Subscription.objects.get(domain=domains[0])
    assert (subscription.is_subscribed, subscription.changed_by) == (
        False,
        "unsubscribe_link",
    )

    admin_page.goto("/admin/weekly_reports/reportdomain/?report=off")
    row = admin_page.get_by_role("row", name="acme.example")
    expect(row).to_contain_text("unsubscribe link, ")
    expect(admin_page.locator("#result_list tbody tr")).to_have_count(1)
