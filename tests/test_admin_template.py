"""Editing the weekly report template in the admin: preview, test mail,
refused syntax errors, what the next run sends, the shipped default."""

import datetime

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from post_office import cache as post_office_cache
from post_office.models import EmailTemplate

from tests.factories import DomainFactory, IssueFactory, OrganizationFactory
from weekly_reports.email_template import shipped_parts
from weekly_reports.weeks import IsoWeek

pytestmark = pytest.mark.django_db

WEEK = IsoWeek(2026, 48)
IN_WEEK = WEEK.start + datetime.timedelta(days=2)
NEW_SUBJECT = "Bugs of {{ organization }} in {{ week }}"


@pytest.fixture
def template():
    return EmailTemplate.objects.get(name="weekly_report", language="")


@pytest.fixture
def acme(site):
    domain = DomainFactory(
        name="acme.example",
        email="team@acme.example",
        organization=OrganizationFactory(name="Acme & Sons"),
    )
    IssueFactory(
        domain=domain, created=IN_WEEK, description="<script>alert(1)</script> XSS"
    )
    return domain


def url(name, template):
    return reverse(f"admin:{name}", args=[template.pk])


def form_data(template, **changes):
    """The change form as the browser posts it, with the preview fields."""
    data = {
        "name": template.name,
        "description": template.description,
        "subject": template.subject,
        "content": template.content,
        "html_content": template.html_content,
        "language": "",
        "preview-domain": "acme.example",
        "preview-week": str(WEEK),
        "_save": "Save",
    }
    data.update(changes)
    return data


def messages_of(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


# The change page


def test_change_page_offers_the_preview_of_the_weekly_report(
    admin_client, template, acme
):
    response = admin_client.get(url("post_office_emailtemplate_change", template))

    content = response.content.decode()
    assert f'formaction="{url("weekly_reports_template_preview", template)}"' in (
        content
    )
    assert 'formtarget="weekly-report-preview"' in content
    assert '<iframe name="weekly-report-preview"' in content


def test_change_page_of_another_template_has_no_preview(admin_client):
    other = EmailTemplate.objects.create(name="welcome", subject="Hi")

    response = admin_client.get(url("post_office_emailtemplate_change", other))

    assert "weekly-report-preview" not in response.content.decode()


def test_change_page_preselects_a_domain_that_can_receive_the_report(
    admin_client, template, acme
):
    DomainFactory(name="aaa.example", email=None)

    response = admin_client.get(url("post_office_emailtemplate_change", template))

    assert response.context["preview_form"].initial["domain"] == "acme.example"


# Preview


def test_preview_renders_the_unsaved_subject_for_the_chosen_domain(
    admin_client, template, acme
):
    response = admin_client.post(
        url("weekly_reports_template_preview", template),
        form_data(template, subject=NEW_SUBJECT),
    )

    assert response.status_code == 200
    assert response.context["rendered"].subject == "Bugs of Acme & Sons in 2026-W48"


def test_preview_saves_nothing(admin_client, template, acme):
    admin_client.post(
        url("weekly_reports_template_preview", template),
        form_data(template, subject=NEW_SUBJECT),
    )

    template.refresh_from_db()
    assert template.subject == shipped_parts()["subject"]


def test_preview_shows_the_html_part_in_a_sandboxed_frame(admin_client, template, acme):
    response = admin_client.post(
        url("weekly_reports_template_preview", template), form_data(template)
    )

    content = response.content.decode()
    assert '<iframe class="weekly-report-html"' in content
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in content
    assert "srcdoc=" in content


def test_preview_shows_the_text_part(admin_client, template, acme):
    response = admin_client.post(
        url("weekly_reports_template_preview", template),
        form_data(template, content="Open: {{ open }}"),
    )

    assert '<pre class="weekly-report-text">Open: 1</pre>' in (
        response.content.decode()
    )


def test_preview_escapes_issue_text_in_every_part(admin_client, template, acme):
    response = admin_client.post(
        url("weekly_reports_template_preview", template), form_data(template)
    )

    assert "<script>" not in response.content.decode()


def test_preview_page_forbids_inline_script_and_may_be_framed_by_the_admin_only(
    admin_client, template, acme
):
    response = admin_client.post(
        url("weekly_reports_template_preview", template), form_data(template)
    )

    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "SAMEORIGIN"


def test_preview_get_renders_the_saved_template(admin_client, template, acme):
    template.subject = "Saved {{ week }}"
    template.save()

    response = admin_client.get(
        url("weekly_reports_template_preview", template),
        {"preview-domain": "acme.example", "preview-week": str(WEEK)},
    )

    assert response.context["rendered"].subject == "Saved 2026-W48"


def test_preview_get_ignores_template_parts_in_the_query_string(
    admin_client, template, acme
):
    response = admin_client.get(
        url("weekly_reports_template_preview", template),
        {"preview-domain": "acme.example", "preview-week": str(WEEK), "subject": "x"},
    )

    assert response.context["rendered"].subject.startswith("OWASP BLT Weekly Report")


def test_preview_without_a_domain_shows_an_imaginary_one(admin_client, template):
    response = admin_client.post(
        url("weekly_reports_template_preview", template),
        form_data(template, **{"preview-domain": ""}),
    )

    assert response.context["rendered"].report.domain_name == "example.com"


def test_preview_of_an_unknown_domain_is_400_naming_it(admin_client, template, acme):
    response = admin_client.post(
        url("weekly_reports_template_preview", template),
        form_data(template, **{"preview-domain": "nobody.example"}),
    )

    assert response.status_code == 400
    assert response.context["problem"] == "No domain is named 'nobody.example'."


def test_preview_of_a_malformed_week_is_400_naming_it(admin_client, template, acme):
    response = admin_client.post(
        url("weekly_reports_template_preview", template),
        form_data(template, **{"preview-week": "2026-W99"}),
    )

    assert response.status_code == 400
    assert response.context["problem"] == (
        "The preview cannot be shown: 2026-W99 is not an ISO week such as 2026-W48."
    )


def test_preview_of_a_syntax_error_names_the_part_and_line(
    admin_client, template, acme
):
    response = admin_client.post(
        url("weekly_reports_template_preview", template),
        form_data(template, content="One\nTwo\n{% for x in recent %}"),
    )

    assert response.status_code == 200
    assert response.context["problem"].startswith(
        "Email template 'weekly_report' has an error in its text content on line 3:"
    )


def test_preview_of_a_template_that_fails_to_render_shows_why(
    admin_client, template, acme
):
    response = admin_client.post(
        url("weekly_reports_template_preview", template),
        form_data(template, content='{% include "missing.txt" %}'),
    )

    assert response.status_code == 200
    assert response.context["problem"] == ("The template fails to render: missing.txt")


def test_preview_is_only_for_the_weekly_report_template(admin_client):
    other = EmailTemplate.objects.create(name="welcome", subject="Hi")

    response = admin_client.post(url("weekly_reports_template_preview", other), {})

    assert response.status_code == 404


# Send me a test


def test_send_me_a_test_mails_the_unsaved_preview_to_the_admin(
    admin_client, template, acme, smtp_server
):
    admin_client.post(
        url("weekly_reports_template_send_test", template),
        form_data(template, subject=NEW_SUBJECT),
    )

    (received,) = smtp_server.received
    assert received.rcpt_tos == ["admin@example.com"]
    assert received.message["Subject"] == "Bugs of Acme & Sons in 2026-W48"


def test_send_me_a_test_says_where_it_went(admin_client, template, acme, smtp_server):
    response = admin_client.post(
        url("weekly_reports_template_send_test", template), form_data(template)
    )

    assert [str(m) for m in response.context["messages"]] == [
        "Sent this preview (acme.example, 2026-W48) to admin@example.com."
    ]


def test_test_mail_offers_no_one_click_unsubscribe_of_the_domain(
    admin_client, template, acme, smtp_server
):
    admin_client.post(
        url("weekly_reports_template_send_test", template), form_data(template)
    )

    message = smtp_server.received[0].message
    assert (message["List-Unsubscribe"], message["List-Unsubscribe-Post"]) == (
        None,
        None,
    )
    assert message["Auto-Submitted"] == "auto-generated"


def test_send_me_a_test_refuses_get_and_sends_nothing(
    admin_client, template, acme, smtp_server
):
    response = admin_client.get(url("weekly_reports_template_send_test", template))

    assert response.status_code == 405
    assert smtp_server.received == []


def test_send_me_a_test_without_an_address_on_the_account_says_so(
    admin_client, admin_user, template, acme, smtp_server
):
    admin_user.email = ""
    admin_user.save()

    response = admin_client.post(
        url("weekly_reports_template_send_test", template), form_data(template)
    )

    assert [str(m) for m in response.context["messages"]] == [
        "Nothing was sent: your user account has no email address."
    ]
    assert smtp_server.received == []


def test_send_me_a_test_reports_a_refusing_mail_server(
    admin_client, template, acme, smtp_server
):
    smtp_server.refuse("admin@example.com")

    response = admin_client.post(
        url("weekly_reports_template_send_test", template), form_data(template)
    )

    (message,) = [str(m) for m in response.context["messages"]]
    assert message.startswith("Sending the test to admin@example.com failed: ")
    assert "550" in message


def test_send_me_a_test_of_a_broken_template_sends_nothing(
    admin_client, template, acme, smtp_server
):
    admin_client.post(
        url("weekly_reports_template_send_test", template),
        form_data(template, subject="{% if %}"),
    )

    assert smtp_server.received == []


# Saving


def test_save_refuses_a_syntax_error_naming_its_line_and_message(
    admin_client, template
):
    content = "Line one\nLine two\n{% endfor %}"

    response = admin_client.post(
        url("post_office_emailtemplate_change", template),
        form_data(template, content=content),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["content"] == [
        "Line 3: Invalid block tag on line 3: 'endfor'. Did you forget to register "
        "or load this tag?"
    ]


def test_save_of_a_syntax_error_leaves_the_template_as_it_was(admin_client, template):
    admin_client.post(
        url("post_office_emailtemplate_change", template),
        form_data(template, html_content="<p>{{ open|no_such_filter }}</p>"),
    )

    template.refresh_from_db()
    assert template.html_content == shipped_parts()["html_content"]


def test_save_refuses_a_template_that_compiles_but_fails_to_render(
    admin_client, template
):
    response = admin_client.post(
        url("post_office_emailtemplate_change", template),
        form_data(template, content='{% include "missing.txt" %}'),
    )

    assert response.context["adminform"].form.non_field_errors() == [
        "Email template 'weekly_report' fails to render: missing.txt"
    ]


def test_saved_subject_is_what_the_next_run_sends(
    admin_client, template, acme, smtp_server, run_weekly
):
    admin_client.post(
        url("post_office_emailtemplate_change", template),
        form_data(template, subject=NEW_SUBJECT),
    )

    run_weekly("--week", str(WEEK))

    assert [m.message["Subject"] for m in smtp_server.received] == [
        "Bugs of Acme & Sons in 2026-W48"
    ]


def test_save_drops_post_office_cached_copies_in_every_language(
    settings, admin_client, template
):
    settings.POST_OFFICE_TEMPLATE_CACHE = True
    for language in ("", "de"):
        post_office_cache.set(f"weekly_report:{language}", "stale")

    admin_client.post(
        url("post_office_emailtemplate_change", template),
        form_data(template, subject=NEW_SUBJECT),
    )

    assert [post_office_cache.get(f"weekly_report:{lang}") for lang in ("", "de")] == [
        None,
        None,
    ]


def test_weekly_report_template_shows_no_translations_to_edit(admin_client, template):
    response = admin_client.get(url("post_office_emailtemplate_change", template))

    assert response.context["inline_admin_formsets"] == []


# The shipped default


def test_restore_asks_first_and_changes_nothing_on_get(admin_client, template):
    template.subject = "Edited"
    template.save()

    response = admin_client.get(url("weekly_reports_template_restore", template))

    assert response.status_code == 200
    assert '<input type="submit" value="Restore the shipped default">' in (
        response.content.decode()
    )
    template.refresh_from_db()
    assert template.subject == "Edited"


def test_restore_puts_the_shipped_subject_text_and_html_back(admin_client, template):
    EmailTemplate.objects.filter(pk=template.pk).update(
        subject="Edited", content="Edited", html_content=""
    )

    admin_client.post(url("weekly_reports_template_restore", template))

    template.refresh_from_db()
    parts = shipped_parts()
    assert (template.subject, template.content, template.html_content) == (
        parts["subject"],
        parts["content"],
        parts["html_content"],
    )


def test_restore_says_so_and_returns_to_the_template(admin_client, template):
    response = admin_client.post(url("weekly_reports_template_restore", template))

    assert response.url == url("post_office_emailtemplate_change", template)
    assert messages_of(response) == [
        "Restored the shipped default of weekly_report; the next run sends it."
    ]


def test_restore_is_written_to_the_templates_history(admin_client, template):
    admin_client.post(url("weekly_reports_template_restore", template))

    response = admin_client.get(url("post_office_emailtemplate_history", template))
    assert "Restored the shipped default." in response.content.decode()


def test_restore_is_refused_to_staff_who_may_only_view(
    client, django_user_model, template
):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_emailtemplate"))
    client.force_login(viewer)
    EmailTemplate.objects.filter(pk=template.pk).update(subject="Edited")

    response = client.post(url("weekly_reports_template_restore", template))

    assert response.status_code == 403
    template.refresh_from_db()
    assert template.subject == "Edited"


# The template every run reads


def test_report_template_cannot_be_renamed(admin_client, template):
    response = admin_client.post(
        url("post_office_emailtemplate_change", template),
        form_data(template, name="weekly_report_old"),
    )

    assert response.context["adminform"].form.errors["name"] == [
        "Every run sends the template named weekly_report; keep the name, or set "
        "WEEKLY_REPORTS['TEMPLATE_NAME'] to the new one first."
    ]
    assert EmailTemplate.objects.filter(name="weekly_report").exists()


def test_second_template_of_the_reports_name_is_refused(admin_client, template):
    response = admin_client.post(
        reverse("admin:post_office_emailtemplate_add"),
        {**form_data(template), "description": "copy"},
    )

    assert response.context["adminform"].form.non_field_errors() == [
        "A template named weekly_report exists already; edit that one."
    ]
    assert EmailTemplate.objects.filter(name="weekly_report").count() == 1


def test_report_template_cannot_be_deleted(admin_client, template):
    response = admin_client.post(
        url("post_office_emailtemplate_delete", template), {"post": "yes"}
    )

    assert response.status_code == 403
    assert EmailTemplate.objects.filter(pk=template.pk).exists()


def test_report_template_cannot_be_deleted_with_others_in_bulk(admin_client, template):
    other = EmailTemplate.objects.create(name="welcome", subject="Hi")

    admin_client.post(
        reverse("admin:post_office_emailtemplate_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [str(template.pk), str(other.pk)],
            "post": "yes",
        },
    )

    assert EmailTemplate.objects.filter(pk=template.pk).exists()
