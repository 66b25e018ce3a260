"""Security: unsubscribe tokens, headers, deployment checks, committed files.

tests/test_unsubscribe.py covers tampered signatures, another domain's
number under this signature, another salt and garbage tokens; the tests here
add the attacks those leave out.
"""

import os
import re
import secrets
import subprocess
import sys

import pytest
from django.core import signing
from django.test import Client, override_settings

from tests.factories import DomainFactory, OrganizationFactory
from tests.subprocesses import ROOT
from weekly_reports.models import Subscription
from weekly_reports.rendering import UNSUBSCRIBE_SALT, unsubscribe_token
from weekly_reports.weeks import IsoWeek

WEEK = IsoWeek(2026, 48)
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
PRODUCTION = {
    "DEBUG": "false",
    "SITE_URL": "https://blt.example",
    "ALLOWED_HOSTS": "blt.example",
}


@pytest.fixture
def client():
    return Client(enforce_csrf_checks=True)


def is_subscribed(domain):
    subscription = Subscription.objects.filter(domain=domain).first()
    return True if subscription is None else subscription.is_subscribed


# Unsubscribe tokens


@pytest.mark.django_db
def test_token_signed_with_another_secret_key_is_refused(client, site):
    domain = DomainFactory()
    guessed_key = "an attacker's guess at the secret key, long enough " * 2
    with override_settings(SECRET_KEY=guessed_key):
        forged = unsubscribe_token(domain.pk)

    response = client.post(f"/weekly-reports/unsubscribe/{forged}/", ONE_CLICK)

    assert response.status_code == 400
    assert is_subscribed(domain) is True


@pytest.mark.django_db
def test_one_domains_token_unsubscribes_that_domain_and_no_other(client, site):
    mine, other = DomainFactory(), DomainFactory()

    client.post(f"/weekly-reports/unsubscribe/{unsubscribe_token(mine.pk)}/", ONE_CLICK)

    assert (is_subscribed(mine), is_subscribed(other)) == (False, True)


@pytest.mark.django_db
def test_token_with_a_signature_from_another_token_is_refused(client, site):
    mine, other = DomainFactory(), DomainFactory()
    _, my_signature = unsubscribe_token(mine.pk).split(":")
    moved = f"{other.pk}:{my_signature}"

    response = client.post(f"/weekly-reports/resubscribe/{moved}/", ONE_CLICK)

    assert response.status_code == 400


def test_token_of_a_domain_is_not_its_bare_number_and_differs_per_domain():
    tokens = {unsubscribe_token(pk) for pk in range(1, 101)}

    assert len(tokens) == 100
    assert not any(token.isdigit() for token in tokens)


def test_token_signature_needs_the_secret_key_and_the_salt():
    token = unsubscribe_token(7)

    assert signing.Signer(salt=UNSUBSCRIBE_SALT).unsign(token) == "7"
    with pytest.raises(signing.BadSignature):
        signing.Signer(key="not the secret key", salt=UNSUBSCRIBE_SALT).unsign(token)


# Headers built from stored text


@pytest.mark.django_db
def test_line_break_in_an_organization_name_cannot_add_a_header(
    site, smtp_server, run_weekly
):
    organization = OrganizationFactory(name="Acme\r\nBcc: victim@example.org\r\n")
    DomainFactory(
        name="acme.example", email="team@acme.example", organization=organization
    )

    run_weekly("--week", str(WEEK))

    (received,) = smtp_server.received
    assert received.rcpt_tos == ["team@acme.example"]
    assert received.message["Bcc"] is None
    assert "\n" not in received.message["Subject"]


@pytest.mark.django_db
def test_line_break_in_a_domain_email_never_reaches_a_header(
    site, smtp_server, run_weekly
):
    DomainFactory(name="acme.example", email="team@acme.example\nBcc: victim@ex.org")

    run_weekly("--week", str(WEEK))

    assert smtp_server.received == []


# manage.py check --deploy


def check_deploy(**variables):
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **variables},
        capture_output=True,
        text=True,
        check=False,
    )


def a_secret_key():
    return secrets.token_urlsafe(50)


def test_check_deploy_is_clean_with_production_settings():
    result = check_deploy(SECRET_KEY=a_secret_key(), **PRODUCTION)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "System check identified no issues (2 silenced).\n"


def test_check_deploy_fails_with_the_committed_development_key():
    result = check_deploy(**PRODUCTION)

    assert result.returncode == 1
    assert "(security.W009) Your SECRET_KEY has less than 50 characters" in (
        result.stderr
    )


def test_check_deploy_fails_with_debug_on():
    result = check_deploy(SECRET_KEY=a_secret_key(), **{**PRODUCTION, "DEBUG": "true"})

    assert result.returncode == 1
    assert "(security.W018) You should not have DEBUG set to True" in result.stderr


def test_demo_over_plain_http_is_not_redirected_to_https():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import blt.settings as s; print(s.SECURE_SSL_REDIRECT, "
            "s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE)",
        ],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout == "False 0 False\n"


# Nothing secret is committed

SECRET_PATTERNS = {
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "an AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "a GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}"),
    "a Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    # Documented placeholders ("user:pass", RabbitMQ's "guest:guest") aside.
    "a password in a URL": re.compile(
        r":/{2}(?!user:pass@|guest:guest@)[^/\s:@'\"]+:[^/\s@'\"]+@"
    ),
    "a secret key": re.compile(
        r"SECRET_KEY\s*=\s*['\"](?!insecure-development-key-change-me)[^'\"]{8,}"
    ),
}


def tracked_files():
    result = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False
    )
    if result.returncode:
        pytest.skip("Not a git checkout: there are no committed files to read.")
    return [ROOT / name for name in result.stdout.decode().split("\0") if name]


def test_env_file_is_ignored_by_git():
    tracked_files()

    result = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False
    )

    assert result.returncode == 0


def test_no_committed_file_holds_a_key_token_or_password():
    found = []
    for path in tracked_files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        found += [
            f"{path.relative_to(ROOT)}: {what}"
            for what, pattern in SECRET_PATTERNS.items()
            if pattern.search(text)
        ]

    assert found == []
