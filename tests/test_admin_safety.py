"""Safety of every admin page: the login check, POST for state changes, no
500 on a malformed request, no asset from another host."""

import re

import pytest
from django.contrib import admin
from django.core import mail
from django.test import Client
from django.urls import URLPattern, URLResolver, reverse
from post_office.models import STATUS, Email, EmailTemplate, Log

from tests.factories import DomainFactory, IssueFactory
from weekly_reports.models import Delivery, Subscription

pytestmark = pytest.mark.django_db

# A value for each keyword that an admin URL takes; an anonymous request is
# turned away before any of them is looked up.
SAMPLE_ARGUMENTS = {
    "app_label": "weekly_reports",
    "object_id": "1",
    "id": "1",
    "pk": "1",
    "content_type_id": "1",
    "content_id": "0" * 32,
}
# The admin pages an anonymous visitor may reach: the login form, and the
# logout, which has nobody to log out and sends them on to the login.
LOGIN_PAGES = {"login", "logout"}


def admin_url_names(patterns=None):
    """The name and keyword arguments of every named admin URL."""
    for pattern in admin.site.get_urls() if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from admin_url_names(pattern.url_patterns)
        elif isinstance(pattern, URLPattern) and pattern.name:
            keywords = list(pattern.pattern.regex.groupindex)
            yield pattern.name, keywords


ADMIN_URLS = sorted(
    {
        reverse(f"admin:{name}", kwargs={k: SAMPLE_ARGUMENTS[k] for k in keywords})
        for name, keywords in admin_url_names()
        if name not in LOGIN_PAGES
    }
)


@pytest.fixture
def data(site):
    """One of everything the admin can change."""
    domain = DomainFactory(name="acme.example", email="team@acme.example")
    IssueFactory(domain=domain)
    Subscription.objects.create(domain=domain)
    email = Email.objects.create(
        from_email="reports@blt.example",
        to=["team@acme.example"],
        subject="Report",
        message="Hello",
        status=STATUS.sent,
    )
    delivery = Delivery.objects.create(
        domain=domain, domain_name=domain.name, week="2026-W48", status="sent"
    )
    delivery.emails.add(email)
    return domain


def snapshot():
    """Everything an admin page could change, to compare before and after."""
    return (
        list(Subscription.objects.values_list("domain_id", "is_subscribed")),
        list(Delivery.objects.values_list("pk", "status", "updated")),
        list(Email.objects.values_list("pk", "status", "last_updated")),
        list(EmailTemplate.objects.values_list("pk", "subject", "last_updated")),
        Log.objects.count(),
        len(mail.outbox),
    )


# The login check


def test_the_admin_has_the_custom_urls_this_test_checks():
    for name in [
        "weekly_reports_reportdomain_toggle",
        "weekly_reports_template_preview",
        "weekly_reports_template_send_test",
        "weekly_reports_template_restore",
        "resend",
    ]:
        assert name in {name for name, _ in admin_url_names()}


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_anonymous_get_of_an_admin_url_is_sent_to_the_login(client, data, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response.url.startswith("/admin/login/?next=")


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_anonymous_post_to_an_admin_url_changes_nothing(client, data, url):
    before = snapshot()

    response = client.post(url, {"report": "off", "action": "turn_report_off"})

    assert response.status_code == 302
    assert response.url.startswith("/admin/login/?next=")
    assert snapshot() == before


@pytest.mark.parametrize(
    "name",
    [
        "weekly_reports_reportdomain_toggle",
        "weekly_reports_template_preview",
        "weekly_reports_template_send_test",
        "weekly_reports_template_restore",
    ],
)
def test_custom_admin_url_sends_a_user_who_is_not_staff_to_the_login(
    client, django_user_model, data, name
):
    client.force_login(django_user_model.objects.create_user("reader"))

    response = client.post(reverse(f"admin:{name}", args=["1"]))

    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")


# POST for every change of state


@pytest.mark.parametrize(
    "name",
    [
        "weekly_reports_reportdomain_toggle",
        "weekly_reports_template_send_test",
    ],
)
def test_custom_admin_url_that_changes_state_refuses_get(admin_client, data, name):
    template = EmailTemplate.objects.get(name="weekly_report")
    pk = data.pk if "reportdomain" in name else template.pk
    before = snapshot()

    response = admin_client.get(reverse(f"admin:{name}", args=[pk]))

    assert response.status_code == 405
    assert snapshot() == before


def test_post_office_resend_refuses_get(admin_client, data):
    email = Email.objects.get()
    before = snapshot()

    response = admin_client.get(reverse("admin:resend", args=[email.pk]))

    assert response.status_code == 405
    assert snapshot() == before


def test_restore_default_on_get_only_asks(admin_client, data):
    template = EmailTemplate.objects.get(name="weekly_report")
    EmailTemplate.objects.filter(pk=template.pk).update(subject="Edited")
    before = snapshot()

    response = admin_client.get(
        reverse("admin:weekly_reports_template_restore", args=[template.pk])
    )

    assert response.status_code == 200
    assert snapshot() == before


# No 500 for a malformed request


def malformed_requests():
    domains = "/admin/weekly_reports/reportdomain/"
    ledger = "/admin/weekly_reports/delivery/"
    template = "/admin/post_office/emailtemplate/{template}/"
    return [
        ("get", f"{domains}?report=maybe", {}),
        ("get", f"{domains}?email=%00", {}),
        ("get", f"{domains}?last_report=bogus&changed_through=%00", {}),
        ("get", f"{domains}?_facets=True&email=valid&report=on", {}),
        ("get", f"{domains}?q=%00", {}),
        ("get", f"{domains}?o=99.x", {}),
        ("get", f"{domains}?p=abc", {}),
        ("get", f"{domains}abc/change/", {}),
        ("get", f"{domains}%00/change/", {}),
        ("post", f"{domains}abc/report/", {"report": "off"}),
        ("post", f"{domains}{{domain}}/report/", {"report": "%00"}),
        ("post", domains, {"action": "turn_report_off", "_selected_action": "abc"}),
        ("post", domains, {"action": "no_such_action", "_selected_action": "1"}),
        ("get", f"{ledger}?week=%00", {}),
        ("get", f"{ledger}?week=2026-W99", {}),
        ("get", f"{ledger}?created__year=abc", {}),
        ("get", f"{ledger}?created__year=2026&created__month=13", {}),
        ("get", f"{ledger}?status__exact=%00", {}),
        ("get", f"{ledger}?domain__id__exact=abc", {}),
        ("get", f"{ledger}?q=%00", {}),
        ("get", f"{ledger}?reason=sent&reason=%00", {}),
        ("get", f"{ledger}?%00=1", {}),
        ("post", ledger, {"action": "send_again", "_selected_action": "abc"}),
        ("get", "/admin/post_office/emailtemplate/abc/change/", {}),
        ("post", f"{template}preview/", {}),
        ("post", f"{template}preview/", {"preview-week": "\x00"}),
        (
            "post",
            f"{template}preview/",
            {"preview-domain": "\x00", "preview-week": "x"},
        ),
        ("get", f"{template}preview/?preview-week=9999-W52", {}),
        ("post", f"{template}send-test/", {"preview-domain": "nobody"}),
        ("post", "/admin/post_office/emailtemplate/abc/preview/", {}),
        ("post", "/admin/post_office/email/abc/resend/", {}),
        ("get", "/weekly-reports/preview/acme.example/?week=%00", {}),
        ("get", "/weekly-reports/preview/%00/", {}),
        ("get", "/weekly-reports/preview/acme.example/?week=0001-W01", {}),
        ("get", "/weekly-reports/preview/acme.example/?week=9999-W51", {}),
        ("post", "/weekly-reports/unsubscribe/%00/", {}),
        ("get", "/weekly-reports/resubscribe/1:x/", {}),
        (
            "post",
            "/admin/post_office/email/",
            {"action": "requeue_selected", "_selected_action": "x"},
        ),
        (
            "post",
            "/admin/post_office/emailtemplate/",
            {"action": "delete_selected", "_selected_action": "x"},
        ),
    ]


@pytest.mark.parametrize(("method", "url", "body"), malformed_requests())
def test_malformed_request_is_never_answered_500(
    django_user_model, data, method, url, body
):
    client = Client(raise_request_exception=False)
    client.force_login(django_user_model.objects.create_superuser("root"))
    template = EmailTemplate.objects.get(name="weekly_report")
    url = url.format(template=template.pk, domain=data.pk)

    response = getattr(client, method)(url, body)

    assert response.status_code < 500


# No asset from a CDN


def admin_pages(domain):
    """The list, add and change page of every registered model, and the
    custom pages of this app."""
    template = EmailTemplate.objects.get(name="weekly_report")
    objects = {
        EmailTemplate: template,
        Email: Email.objects.get(),
        Delivery: Delivery.objects.get(),
        type(domain): domain,
    }
    pages = ["/admin/", "/weekly-reports/preview/acme.example/"]
    for model in admin.site._registry:
        info = model._meta.app_label, model._meta.model_name
        pages.append(reverse("admin:{}_{}_changelist".format(*info)))
        pages.append(reverse("admin:{}_{}_add".format(*info)))
        obj = objects.get(model) or model._default_manager.first()
        if obj is not None:
            pages.append(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
    pages.append(reverse("admin:weekly_reports_template_preview", args=[template.pk]))
    return pages


ASSET = re.compile(r'<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)="([^"]*)"')


def test_no_admin_page_loads_an_asset_from_another_host(admin_client, data):
    for page in admin_pages(data):
        response = admin_client.get(page)
        if response.status_code != 200:
            continue

        assets = ASSET.findall(response.content.decode())
        foreign = [url for url in assets if re.match(r"(?:[a-z]+:)?//", url)]
        assert foreign == [], page
