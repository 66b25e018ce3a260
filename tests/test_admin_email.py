"""post_office's Email admin as this project registers it: resending takes
a POST, and every action says what it did."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from post_office.models import STATUS, Email, Log

from weekly_reports.models import Delivery

pytestmark = pytest.mark.django_db


def messages_of(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def email():
    return Email.objects.create(
        from_email="reports@blt.example",
        to=["team@acme.example"],
        subject="Weekly report",
        message="Hello",
        status=STATUS.sent,
    )


@pytest.fixture
def resend_url(email):
    return reverse("admin:resend", args=[email.pk])


def test_resend_on_get_is_refused_with_405(admin_client, resend_url, smtp_server):
    response = admin_client.get(resend_url)

    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_resend_on_get_sends_nothing_and_logs_nothing(
    admin_client, resend_url, smtp_server
):
    admin_client.get(resend_url)

    assert smtp_server.received == []
    assert not Log.objects.exists()


def test_resend_on_post_sends_the_message_again(admin_client, resend_url, smtp_server):
    admin_client.post(resend_url)

    assert [m.rcpt_tos for m in smtp_server.received] == [["team@acme.example"]]


def test_resend_on_post_says_so_and_returns_to_the_message(
    admin_client, email, resend_url, smtp_server
):
    response = admin_client.post(resend_url)

    assert response.url == reverse("admin:post_office_email_change", args=[email.pk])
    assert messages_of(response) == ["The message was sent again."]


def test_resend_that_fails_says_why(admin_client, email, resend_url, smtp_server):
    smtp_server.refuse("team@acme.example")

    response = admin_client.post(resend_url)

    (message,) = messages_of(response)
    assert message.startswith("Sending the message again failed: ")
    assert "550" in message


def test_resend_is_refused_to_staff_who_may_only_view(
    client, django_user_model, resend_url, smtp_server
):
    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_email"))
    client.force_login(viewer)

    response = client.post(resend_url)

    assert response.status_code == 403
    assert smtp_server.received == []


def test_change_page_offers_resend_as_a_form_that_posts(
    admin_client, email, resend_url
):
    response = admin_client.get(
        reverse("admin:post_office_email_change", args=[email.pk])
    )

    content = response.content.decode()
    assert f'<form method="post" action="{resend_url}"' in content
    assert f'href="{resend_url}"' not in content


def test_requeue_action_says_how_many_it_requeued(admin_client, email):
    response = admin_client.post(
        reverse("admin:post_office_email_changelist"),
        {"action": "requeue_selected", "_selected_action": [str(email.pk)]},
    )

    assert messages_of(response) == ["Requeued 1 email for the next send_queued_mail."]
    email.refresh_from_db()
    assert email.status == STATUS.queued


def test_resend_that_delivers_a_failed_report_marks_its_ledger_row_sent(
    admin_client, email, resend_url, smtp_server
):
    Email.objects.filter(pk=email.pk).update(status=STATUS.failed)
    row = Delivery.objects.create(
        domain_name="acme.example", week="2026-W48", status="failed", error="550"
    )
    row.emails.add(email)

    admin_client.post(resend_url)

    row.refresh_from_db()
    assert (row.status, row.error) == ("sent", "")


def test_html_part_is_shown_in_a_sandboxed_frame_not_in_the_page(admin_client):
    email = Email.objects.create(
        from_email="reports@blt.example",
        to=["team@acme.example"],
        subject="Weekly report",
        message="Hello",
        html_message='<style>body { color: red; }</style><p class="x">Hello</p>',
        status=STATUS.sent,
    )

    content = admin_client.get(
        reverse("admin:post_office_email_change", args=[email.pk])
    ).content.decode()

    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in content
    assert (
        'srcdoc="&lt;style&gt;body { color: red; }&lt;/style&gt;'
        '&lt;p class=&quot;x&quot;&gt;Hello&lt;/p&gt;"'
    ) in content
    assert "<style>body { color: red; }" not in content
