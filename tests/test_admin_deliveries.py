"""The delivery ledger in the admin: read-only, filtered, sent again."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from post_office.models import Email, EmailTemplate

from tests.factories import DomainFactory
from weekly_reports.models import Delivery, Subscription
from weekly_reports.weeks import IsoWeek

pytestmark = pytest.mark.django_db

WEEK = IsoWeek(2026, 48)
CHANGELIST = reverse("admin:weekly_reports_delivery_changelist")


def messages_of(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


def listed(client, query=""):
    response = client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200
    return [(row.week, row.domain_name) for row in response.context["cl"].result_list]


def send_again(client, *rows, confirmed=True):
    data = {"action": "send_again", "_selected_action": [str(r.pk) for r in rows]}
    if confirmed:
        data["confirmed"] = "yes"
    return client.post(CHANGELIST, data)


@pytest.fixture
def acme(site):
    return DomainFactory(name="acme.example", email="team@acme.example")


@pytest.fixture
def sent(acme, smtp_server, run_weekly):
    """The ledger row of acme's report, sent once over SMTP."""
    run_weekly("--week", str(WEEK))
    return Delivery.objects.get(domain=acme)


def ledger_row(name, week="2026-W48", status="sent", **fields):
    domain = DomainFactory(name=name)
    return Delivery.objects.create(
        domain=domain, domain_name=name, week=week, status=status, **fields
    )


# The list


def test_list_shows_week_domain_recipients_status_and_message(admin_client, sent):
    content = admin_client.get(CHANGELIST).content.decode()

    email = sent.emails.get()
    email_url = reverse("admin:post_office_email_change", args=[email.pk])
    domain_url = reverse(
        "admin:weekly_reports_reportdomain_change", args=[sent.domain_id]
    )
    assert f'<a href="{domain_url}">acme.example</a>' in content
    assert '<td class="field-recipients">team@acme.example</td>' in content
    assert '<td class="field-status">sent</td>' in content
    assert f'<a href="{email_url}">team@acme.example</a> sent' in content


def test_list_shows_the_skip_reason(admin_client):
    ledger_row("acme.example", status="skipped", reason="no_email")

    content = admin_client.get(CHANGELIST).content.decode()

    assert '<td class="field-reason_or_error">no_email</td>' in content


def test_list_shows_the_error_of_a_failed_report(admin_client):
    ledger_row("acme.example", status="failed", error="SMTPDataError: 554 spam")

    content = admin_client.get(CHANGELIST).content.decode()

    assert '<td class="field-reason_or_error">SMTPDataError: 554 spam</td>' in content


def test_list_names_a_deleted_domain(admin_client):
    row = ledger_row("acme.example")
    row.domain.delete()

    content = admin_client.get(CHANGELIST).content.decode()

    assert "acme.example <small>(deleted)</small>" in content


def test_list_is_newest_week_first(admin_client):
    ledger_row("b.example", week="2026-W47")
    ledger_row("a.example", week="2026-W48")

    assert listed(admin_client) == [
        ("2026-W48", "a.example"),
        ("2026-W47", "b.example"),
    ]


def test_week_filter_offers_the_ledgers_weeks_newest_first(admin_client):
    ledger_row("b.example", week="2026-W47")
    ledger_row("a.example", week="2026-W48")

    response = admin_client.get(CHANGELIST)

    (week_filter,) = [
        spec for spec in response.context["cl"].filter_specs if spec.title == "week"
    ]
    assert week_filter.lookup_choices == [
        ("2026-W48", "2026-W48"),
        ("2026-W47", "2026-W47"),
    ]


def test_week_filter_lists_the_rows_of_that_week(admin_client):
    ledger_row("b.example", week="2026-W47")
    ledger_row("a.example", week="2026-W48")

    assert listed(admin_client, "week=2026-W47") == [("2026-W47", "b.example")]


def test_status_filter_lists_the_rows_in_that_state(admin_client):
    ledger_row("a.example", status="sent")
    ledger_row("b.example", status="failed")

    assert listed(admin_client, "status__exact=failed") == [("2026-W48", "b.example")]


def test_list_has_a_date_hierarchy_on_creation(admin_client):
    ledger_row("a.example")

    response = admin_client.get(CHANGELIST)

    assert response.context["cl"].date_hierarchy == "created"


def test_list_filters_by_domain_from_the_domains_list(admin_client):
    row = ledger_row("a.example")
    ledger_row("b.example")

    assert listed(admin_client, f"domain__id__exact={row.domain_id}") == [
        ("2026-W48", "a.example")
    ]


# Read-only


def test_ledger_rows_cannot_be_added(admin_client):
    response = admin_client.get(reverse("admin:weekly_reports_delivery_add"))

    assert response.status_code == 403


def test_ledger_row_page_is_a_view_without_a_save_button(admin_client):
    row = ledger_row("a.example")

    response = admin_client.get(
        reverse("admin:weekly_reports_delivery_change", args=[row.pk])
    )

    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode()


def test_post_to_a_ledger_row_changes_nothing(admin_client):
    row = ledger_row("a.example", status="failed")

    response = admin_client.post(
        reverse("admin:weekly_reports_delivery_change", args=[row.pk]),
        {"status": "sent", "week": "2026-W48", "domain_name": "a.example"},
    )

    assert response.status_code == 403
    row.refresh_from_db()
    assert row.status == "failed"


def test_ledger_rows_cannot_be_deleted(admin_client):
    row = ledger_row("a.example")

    response = admin_client.post(
        reverse("admin:weekly_reports_delivery_delete", args=[row.pk]),
        {"post": "yes"},
    )

    assert response.status_code == 403
    assert Delivery.objects.filter(pk=row.pk).exists()


# Send again


def test_send_again_asks_for_confirmation_and_sends_nothing_yet(
    admin_client, sent, smtp_server
):
    response = send_again(admin_client, sent, confirmed=False)

    assert response.status_code == 200
    assert response.templates[0].name == "admin/weekly_reports/delivery/send_again.html"
    assert "<li>2026-W48: acme.example (sent, to team@acme.example)</li>" in (
        response.content.decode()
    )
    assert len(smtp_server.received) == 1


def test_send_again_confirmation_posts_back_the_selection(admin_client, sent):
    response = send_again(admin_client, sent, confirmed=False)

    content = response.content.decode()
    assert '<form method="post">' in content
    assert f'<input type="hidden" name="_selected_action" value="{sent.pk}">' in (
        content
    )
    assert '<input type="hidden" name="confirmed" value="yes">' in content


def test_send_again_once_confirmed_sends_the_report_again(
    admin_client, sent, smtp_server
):
    send_again(admin_client, sent)

    assert [m.rcpt_tos for m in smtp_server.received] == [
        ["team@acme.example"],
        ["team@acme.example"],
    ]


def test_send_again_reports_the_runs_summary(admin_client, sent, smtp_server):
    response = send_again(admin_client, sent)

    assert messages_of(response) == [
        "Weekly reports for 2026-W48: 1 sent, 0 skipped, 0 failed, 0 already sent."
    ]


def test_send_again_links_the_new_message_to_the_ledger_row(
    admin_client, sent, smtp_server
):
    send_again(admin_client, sent)

    assert sent.emails.count() == 2


def test_send_again_still_skips_an_unsubscribed_domain(admin_client, sent, smtp_server):
    Subscription.objects.create(domain=sent.domain, is_subscribed=False)

    response = send_again(admin_client, sent)

    assert len(smtp_server.received) == 1
    assert messages_of(response) == [
        "Weekly reports for 2026-W48: 0 sent, 1 skipped, 0 failed, 0 already sent."
    ]


def test_send_again_of_a_deleted_domain_says_it_cannot(admin_client, sent):
    sent.domain.delete()

    response = send_again(admin_client, sent)

    assert messages_of(response) == ["Not sent again: acme.example was deleted."]


def test_send_again_says_so_when_the_template_is_broken(
    admin_client, sent, smtp_server
):
    EmailTemplate.objects.filter(name="weekly_report").update(subject="{% if %}")

    response = send_again(admin_client, sent)

    (message,) = messages_of(response)
    assert message.startswith("Nothing sent again: Email template 'weekly_report'")
    assert len(smtp_server.received) == 1


def test_send_again_is_not_offered_to_staff_who_may_only_view(
    client, django_user_model, sent, smtp_server
):
    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_delivery"))
    client.force_login(viewer)

    page = client.get(CHANGELIST).content.decode()
    send_again(client, sent)

    assert "send_again" not in page
    assert len(smtp_server.received) == 1
    assert Email.objects.count() == 1
