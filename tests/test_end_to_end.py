"""run_weekly against a real SMTP server on loopback."""

import datetime

import pytest
from post_office.models import STATUS, Email

from tests.factories import DomainFactory, IssueFactory, OrganizationFactory
from weekly_reports.models import Delivery
from weekly_reports.weeks import IsoWeek

WEEK = IsoWeek(2026, 48)
IN_WEEK = WEEK.start + datetime.timedelta(days=2)

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(site):
    organization = OrganizationFactory(name="Acme & Sons")
    domain = DomainFactory(
        name="acme.example", email="  Security@Acme.example ", organization=organization
    )
    IssueFactory(
        domain=domain,
        description="<b>XSS</b> in {{ request.user }} & {% debug %}",
        views=None,
        label=4,
        created=IN_WEEK,
    )
    IssueFactory(
        domain=domain,
        status="closed",
        closed_date=IN_WEEK,
        created=IN_WEEK - datetime.timedelta(days=30),
    )
    return domain


def test_each_recipient_gets_one_message_with_both_parts(acme, smtp_server, run_weekly):
    result = run_weekly("--week", str(WEEK))

    assert result.exit_status == 0
    assert len(smtp_server.received) == 1
    received = smtp_server.received[0]
    assert received.rcpt_tos == ["Security@Acme.example"]
    assert received.message["From"] == "OWASP BLT <reports@blt.example>"
    assert received.message["To"] == "Security@Acme.example"
    assert received.message["Subject"].startswith("OWASP BLT Weekly Report")
    assert received.message.get_content_type() == "multipart/alternative"


def test_message_carries_the_list_headers(acme, smtp_server, run_weekly):
    run_weekly("--week", str(WEEK))

    message = smtp_server.received[0].message
    # The header is long enough to be folded onto a second line.
    unsubscribe = str(message["List-Unsubscribe"]).strip()
    assert unsubscribe.startswith("<https://blt.example/weekly-reports/unsubscribe/")
    assert unsubscribe.endswith("/>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["List-Id"] == "OWASP BLT weekly reports <weekly-reports.blt.example>"


def test_issue_text_is_escaped_in_html_and_verbatim_in_text(
    acme, smtp_server, run_weekly
):
    run_weekly("--week", str(WEEK))

    received = smtp_server.received[0]
    raw_description = "<b>XSS</b> in {{ request.user }} & {% debug %}"
    assert raw_description in received.text
    assert "&lt;b&gt;XSS&lt;/b&gt; in {{ request.user }} &amp; {% debug %}" in (
        received.html
    )
    assert "<b>XSS</b>" not in received.html
    assert "Acme & Sons" in received.message["Subject"]
    assert "&amp;" not in received.message["Subject"]


def test_message_shows_the_figures_and_the_issue_link(acme, smtp_server, run_weekly):
    run_weekly("--week", str(WEEK))

    text = smtp_server.received[0].text
    issue = acme.issue_set.order_by("-created").first()
    assert f"https://blt.example/issue/{issue.pk}/" in text
    assert "Security" in text
    assert "2026-W48" in text


def test_second_run_for_the_week_sends_nothing(acme, smtp_server, run_weekly):
    run_weekly("--week", str(WEEK))
    second = run_weekly("--week", str(WEEK))

    assert len(smtp_server.received) == 1
    assert second.last_line == (
        "Weekly reports for 2026-W48: 0 sent, 0 skipped, 0 failed, 1 already sent"
    )


def test_force_sends_again(acme, smtp_server, run_weekly):
    run_weekly("--week", str(WEEK))
    forced = run_weekly("--week", str(WEEK), "--force")

    assert len(smtp_server.received) == 2
    assert forced.last_line == (
        "Weekly reports for 2026-W48: 1 sent, 0 skipped, 0 failed, 0 already sent"
    )


def test_dry_run_writes_and_sends_nothing(acme, smtp_server, run_weekly):
    result = run_weekly("--week", str(WEEK), "--dry-run")

    assert result.exit_status == 0
    assert smtp_server.received == []
    assert not Delivery.objects.exists()
    assert not Email.objects.exists()
    assert result.last_line == (
        "Weekly reports for 2026-W48 (dry run): 1 would send, 0 skipped, 0 already sent"
    )


def test_refused_recipient_fails_while_the_others_are_delivered(
    site, smtp_server, run_weekly
):
    DomainFactory(name="a.example", email="ok@a.example")
    DomainFactory(name="b.example", email="gone@b.example")
    DomainFactory(name="c.example", email="ok@c.example")
    smtp_server.refuse("gone@b.example")

    result = run_weekly("--week", str(WEEK))

    assert result.exit_status == 1
    assert sorted(r for m in smtp_server.received for r in m.rcpt_tos) == [
        "ok@a.example",
        "ok@c.example",
    ]
    assert result.last_line == (
        "Weekly reports for 2026-W48: 2 sent, 0 skipped, 1 failed, 0 already sent"
    )
    failed = Delivery.objects.get(domain_name="b.example")
    assert failed.status == Delivery.Status.FAILED
    assert "550" in failed.error


def test_permanent_refusal_is_not_retried(site, smtp_server, run_weekly):
    DomainFactory(name="b.example", email="gone@b.example")
    smtp_server.refuse("gone@b.example")

    run_weekly("--week", str(WEEK))

    assert Email.objects.get().status == STATUS.failed


def test_rerun_retries_only_the_failed_report(site, smtp_server, run_weekly):
    DomainFactory(name="a.example", email="ok@a.example")
    DomainFactory(name="b.example", email="gone@b.example")
    smtp_server.refuse("gone@b.example")
    run_weekly("--week", str(WEEK))
    smtp_server.handler.refusals.clear()

    rerun = run_weekly("--week", str(WEEK))

    assert rerun.exit_status == 0
    assert [m.rcpt_tos for m in smtp_server.received] == [
        ["ok@a.example"],
        ["gone@b.example"],
    ]
    assert Delivery.objects.get(domain_name="b.example").status == "sent"


def test_temporary_refusal_is_requeued_for_a_retry(site, smtp_server, run_weekly):
    DomainFactory(name="b.example", email="busy@b.example")
    smtp_server.refuse("busy@b.example", "451 4.3.0 Try again later")

    result = run_weekly("--week", str(WEEK))

    email = Email.objects.get()
    assert email.status == STATUS.requeued
    assert email.number_of_retries == 1
    assert result.exit_status == 1
    assert result.last_line.endswith("1 deferred")
    assert Delivery.objects.get().status == Delivery.Status.QUEUED


def test_a_week_not_yet_ended_is_refused_before_anything_is_written(
    acme, smtp_server, run_weekly
):
    from django.core.management.base import CommandError

    running = IsoWeek.last_complete().next()

    with pytest.raises(CommandError) as refused:
        run_weekly("--week", str(running))

    assert refused.value.returncode == 2
    assert str(refused.value) == (
        f"--week {running} has not ended yet; the last complete week is "
        f"{IsoWeek.last_complete()}."
    )
    assert not Delivery.objects.exists()
    assert smtp_server.received == []


def test_week_with_non_ascii_digits_is_refused(acme, run_weekly):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as refused:
        run_weekly("--week", "２０２６-W48")

    assert refused.value.returncode == 2


def test_control_characters_never_reach_the_subject(site, smtp_server, run_weekly):
    organization = OrganizationFactory(name="Evil\x1b[31m\x07 Corp\r\nBcc: x@y.z")
    DomainFactory(
        name="evil.example", email="a@evil.example", organization=organization
    )

    run_weekly("--week", str(WEEK))

    subject = smtp_server.received[0].message["Subject"]
    assert subject.startswith("OWASP BLT Weekly Report: Evil[31m Corp Bcc: x@y.z")
    assert smtp_server.received[0].message["Bcc"] is None
