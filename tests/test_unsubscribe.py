"""One-click unsubscribe (RFC 8058) through the link of a real message."""

import json
import re
from urllib.parse import urlsplit

import pytest
from django.core import signing
from django.test import Client

from tests.factories import DomainFactory
from weekly_reports.models import Subscription
from weekly_reports.rendering import unsubscribe_token
from weekly_reports.weeks import IsoWeek

pytestmark = pytest.mark.django_db

WEEK = IsoWeek(2026, 48)
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def domain(site):
    return DomainFactory(name="acme.example", email="team@acme.example")


@pytest.fixture
def client():
    """A client that checks CSRF tokens, as a real server does."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def unsubscribe_path(domain, smtp_server, run_weekly):
    """The path of the List-Unsubscribe link in the domain's sent report."""
    run_weekly("--week", str(WEEK))
    (received,) = smtp_server.received

    # The long header is folded onto a second line; unfolding leaves the
    # folding white space in front of the angle bracket.
    header = received.message["List-Unsubscribe"].strip()
    url = header.removeprefix("<").removesuffix(">")
    assert url.startswith("https://blt.example/")
    return urlsplit(url).path


@pytest.fixture
def token(unsubscribe_path):
    return unsubscribe_path.rstrip("/").rsplit("/", 1)[1]


def is_subscribed(domain):
    subscription = Subscription.objects.filter(domain=domain).first()
    return True if subscription is None else subscription.is_subscribed


def test_one_click_form_post_unsubscribes_the_domain(client, domain, unsubscribe_path):
    client.post(
        unsubscribe_path,
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
        secure=True,
    )

    assert is_subscribed(domain) is False


def test_one_click_form_post_is_answered_200_directly(client, unsubscribe_path):
    response = client.post(
        unsubscribe_path,
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
        secure=True,
    )

    assert response.status_code == 200


def test_one_click_multipart_post_unsubscribes_the_domain(
    client, domain, unsubscribe_path
):
    response = client.post(unsubscribe_path, ONE_CLICK, secure=True)

    assert response.status_code == 200
    assert is_subscribed(domain) is False


def test_unsubscribe_records_that_the_link_was_used(client, domain, unsubscribe_path):
    client.post(unsubscribe_path, ONE_CLICK, secure=True)

    assert Subscription.objects.get(domain=domain).changed_by == "unsubscribe_link"


def test_get_changes_nothing(client, domain, unsubscribe_path):
    response = client.get(unsubscribe_path, secure=True)

    assert response.status_code == 200
    assert not Subscription.objects.filter(domain=domain).exists()


def test_get_shows_one_form_with_one_button(client, unsubscribe_path):
    content = client.get(unsubscribe_path, secure=True).content.decode()

    assert (content.count("<form"), content.count("<button")) == (1, 1)
    assert f'<form method="post" action="{unsubscribe_path}">' in content


def test_head_changes_nothing(client, domain, unsubscribe_path):
    response = client.head(unsubscribe_path, secure=True)

    assert response.status_code == 200
    assert not Subscription.objects.filter(domain=domain).exists()


def test_tampered_token_is_answered_400(client, domain, token):
    value, signature = token.split(":")
    first = "B" if signature[0] == "A" else "A"
    tampered = f"{value}:{first}{signature[1:]}"

    response = client.post(f"/weekly-reports/unsubscribe/{tampered}/", ONE_CLICK)

    assert response.status_code == 400
    assert is_subscribed(domain) is True


def test_token_with_another_domains_pk_but_this_signature_is_answered_400(
    client, domain, token
):
    other = DomainFactory(name="other.example")
    _, signature = token.split(":")

    response = client.post(
        f"/weekly-reports/unsubscribe/{other.pk}:{signature}/", ONE_CLICK
    )

    assert response.status_code == 400
    assert is_subscribed(other) is True


def test_token_signed_with_another_salt_is_answered_400(client, domain):
    forged = signing.Signer(salt="django.contrib.sessions").sign(str(domain.pk))

    response = client.post(f"/weekly-reports/unsubscribe/{forged}/", ONE_CLICK)

    assert response.status_code == 400
    assert is_subscribed(domain) is True


def test_token_naming_a_domain_that_does_not_exist_is_answered_400(client, domain):
    token = unsubscribe_token(domain.pk + 1000)

    response = client.post(f"/weekly-reports/unsubscribe/{token}/", ONE_CLICK)

    assert response.status_code == 400


def test_signed_token_that_names_no_number_is_answered_400(client, site):
    token = signing.Signer(salt="weekly_reports.unsubscribe").sign("acme")

    response = client.post(f"/weekly-reports/unsubscribe/{token}/", ONE_CLICK)

    assert response.status_code == 400


@pytest.mark.parametrize(
    "garbage",
    ["garbage", ":", "1:", "1:2:3", "%00", "\u00e9t\u00e9:x", "1" * 500],
)
def test_garbage_token_is_answered_400(client, site, garbage):
    response = client.post(f"/weekly-reports/unsubscribe/{garbage}/", ONE_CLICK)

    assert response.status_code == 400


def test_garbage_token_on_get_is_answered_400(client, site):
    response = client.get("/weekly-reports/unsubscribe/garbage/")

    assert response.status_code == 400


def test_subscribe_again_button_turns_the_report_back_on(
    client, domain, unsubscribe_path
):
    done = client.post(unsubscribe_path, ONE_CLICK, secure=True).content.decode()
    (action,) = re.findall(r'<form method="post" action="([^"]+)">', done)

    response = client.post(action, secure=True)

    assert response.status_code == 200
    assert is_subscribed(domain) is True


def test_subscribe_again_records_that_the_link_was_used(
    client, domain, token, unsubscribe_path
):
    client.post(unsubscribe_path, ONE_CLICK, secure=True)

    client.post(f"/weekly-reports/resubscribe/{token}/", secure=True)

    assert Subscription.objects.get(domain=domain).changed_by == "resubscribe_link"


def test_get_of_the_subscribe_again_link_changes_nothing(
    client, domain, token, unsubscribe_path
):
    client.post(unsubscribe_path, ONE_CLICK, secure=True)

    response = client.get(f"/weekly-reports/resubscribe/{token}/", secure=True)

    assert response.status_code == 200
    assert is_subscribed(domain) is False


def test_subscribe_again_records_the_link_when_reports_are_off_by_default(
    settings, client, domain
):
    settings.WEEKLY_REPORTS = {"SUBSCRIBED_BY_DEFAULT": False}
    token = unsubscribe_token(domain.pk)

    client.post(f"/weekly-reports/resubscribe/{token}/", secure=True)

    subscription = Subscription.objects.get(domain=domain)
    assert (subscription.is_subscribed, subscription.changed_by) == (
        True,
        "resubscribe_link",
    )


def test_next_run_skips_the_unsubscribed_domain(
    client, domain, unsubscribe_path, smtp_server, run_weekly
):
    client.post(unsubscribe_path, ONE_CLICK, secure=True)

    result = run_weekly("--week", "2026-W47", "--json")

    report = json.loads(result.stdout)
    assert (report["status"], report["reason"]) == ("skipped", "unsubscribed")
    assert len(smtp_server.received) == 1
