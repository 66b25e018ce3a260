"""The staff page /weekly-reports/preview/<domain>/?week=…"""

import datetime
import html

import pytest
from post_office.models import EmailTemplate

from tests.factories import DomainFactory, IssueFactory, OrganizationFactory
from weekly_reports.models import Delivery, Subscription
from weekly_reports.weeks import IsoWeek

pytestmark = pytest.mark.django_db

WEEK = IsoWeek(2026, 48)
IN_WEEK = WEEK.start + datetime.timedelta(days=2)
PAGE = "/weekly-reports/preview/acme.example/"


@pytest.fixture
def acme(site):
    domain = DomainFactory(
        name="acme.example",
        email="team@acme.example",
        organization=OrganizationFactory(name="Acme & Sons"),
    )
    IssueFactory(
        domain=domain,
        created=IN_WEEK,
        description="<script>alert(1)</script> in {{ request.user }}",
    )
    return domain


def preview(client, week=str(WEEK), path=PAGE):
    return client.get(path, {"week": week} if week is not None else {})


def test_staff_sees_the_subject_of_the_domains_report(admin_client, acme):
    response = preview(admin_client)

    assert response.status_code == 200
    assert response.context["rendered"].subject == (
        "OWASP BLT Weekly Report: Acme & Sons (acme.example), 2026-W48"
    )


def test_preview_is_the_message_a_run_delivers(
    admin_client, acme, smtp_server, run_weekly
):
    rendered = preview(admin_client).context["rendered"]

    run_weekly("--week", str(WEEK))

    (received,) = smtp_server.received
    assert rendered.subject == received.message["Subject"]
    assert rendered.text.splitlines() == received.text.splitlines()
    assert rendered.html.splitlines() == received.html.splitlines()
    assert rendered.headers["List-Unsubscribe"] == " ".join(
        received.message["List-Unsubscribe"].split()
    )


def test_preview_shows_the_headers_of_the_message(admin_client, acme):
    response = preview(admin_client)

    headers = response.context["rendered"].headers
    assert list(headers) == [
        "From",
        "To",
        "Subject",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "Auto-Submitted",
        "List-Id",
    ]
    assert headers["To"] == "team@acme.example"


def test_preview_escapes_issue_text(admin_client, acme):
    content = preview(admin_client).content.decode()

    assert "<script>" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt; in {{ request.user }}" in content


def test_preview_shows_the_html_part_in_a_sandboxed_frame(admin_client, acme):
    content = preview(admin_client).content.decode()

    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in content
    srcdoc = content.split('srcdoc="', 1)[1].split('"', 1)[0]
    assert "Acme &amp; Sons" in html.unescape(srcdoc)


def test_preview_forbids_inline_script(admin_client, acme):
    response = preview(admin_client)

    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_preview_without_a_week_shows_the_last_complete_week(admin_client, acme):
    response = preview(admin_client, week=None)

    assert response.context["week"] == str(IsoWeek.last_complete())


def test_preview_links_the_weeks_before_and_after(admin_client, acme):
    response = preview(admin_client)

    assert (response.context["previous_week"], response.context["next_week"]) == (
        "2026-W47",
        "2026-W49",
    )


def test_preview_of_the_first_representable_week_has_no_week_before(admin_client, acme):
    response = preview(admin_client, week="0001-W01")

    assert response.status_code == 200
    assert response.context["previous_week"] is None


@pytest.mark.parametrize("week", ["2026-W99", "garbage", "2026-W4", "\x00"])
def test_preview_of_a_malformed_week_is_400_naming_it(admin_client, acme, week):
    response = preview(admin_client, week=week)

    assert response.status_code == 400
    assert response.context["problem"] == (
        f"{week!r} is not an ISO week such as 2026-W48."
    )


def test_preview_of_an_unknown_domain_is_404(admin_client, acme):
    response = preview(admin_client, path="/weekly-reports/preview/nobody.example/")

    assert response.status_code == 404


def test_preview_of_a_name_with_a_nul_character_is_404(admin_client, acme):
    response = preview(admin_client, path="/weekly-reports/preview/acme%00/")

    assert response.status_code == 404


def test_preview_says_why_a_run_would_skip_the_domain(admin_client, acme):
    Subscription.objects.create(domain=acme, is_subscribed=False)

    content = preview(admin_client).content.decode()

    assert "A run would skip this domain: unsubscribed." in content


def test_preview_shows_the_ledger_state_of_that_week(admin_client, acme):
    Delivery.objects.create(
        domain=acme,
        domain_name=acme.name,
        week=str(WEEK),
        status="failed",
        recipients="team@acme.example",
        error="SMTPDataError: 554 spam",
    )

    content = preview(admin_client).content.decode()

    assert (
        "The ledger has this report as failed to team@acme.example: "
        "SMTPDataError: 554 spam"
    ) in content


def test_preview_with_a_broken_saved_template_shows_the_problem(admin_client, acme):
    EmailTemplate.objects.filter(name="weekly_report").update(subject="{% if %}")

    response = preview(admin_client)

    assert response.status_code == 200
    assert response.context["problem"].startswith(
        "Email template 'weekly_report' has an error in its subject on line 1:"
    )


def test_anonymous_visitor_is_sent_to_the_admin_login(client, acme):
    response = preview(client)

    assert response.status_code == 302
    assert response.url.startswith("/admin/login/?next=/weekly-reports/preview/")


def test_logged_in_user_who_is_not_staff_is_sent_to_the_admin_login(
    client, django_user_model, acme
):
    client.force_login(django_user_model.objects.create_user("reader"))

    response = preview(client)

    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")


def test_preview_refuses_post(admin_client, acme):
    response = admin_client.post(PAGE)

    assert response.status_code == 405
