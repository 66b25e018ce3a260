"""Settings of the weekly reports app.

The project sets one dict, ``WEEKLY_REPORTS``, whose keys are merged over
``DEFAULTS`` below each time a value is read, so ``override_settings`` in a
test reaches the app at once. Two settings live at the top level because
migrations read them, the way Django reads ``AUTH_USER_MODEL``:

``WEEKLY_REPORTS_DOMAIN_MODEL``
    The host's domain model, ``"app_label.ModelName"``; default
    ``"website.Domain"`` as in OWASP BLT.
``WEEKLY_REPORTS_ISSUE_MODEL``
    The host's issue model; default ``"website.Issue"``.
"""

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS = {
    # Name of the post_office EmailTemplate that holds subject, text and HTML.
    "TEMPLATE_NAME": "weekly_report",
    # How many of a domain's newest issues the report lists.
    "RECENT_ISSUES": 10,
    # Length of each listed description, in characters as a reader counts
    # them (grapheme clusters).
    "DESCRIPTION_LENGTH": 100,
    # Whether a domain that nobody has turned on or off gets the report.
    "SUBSCRIBED_BY_DEFAULT": True,
    # Domains computed, rendered and queued together in one transaction.
    "BATCH_SIZE": 500,
    # Path of an issue's page under SITE_URL; ``{pk}`` is the issue's key.
    "ISSUE_PATH": "/issue/{pk}/",
    # ``List-Id`` header: "<name> <<domain>>" (RFC 2919).
    "LIST_ID_NAME": "OWASP BLT weekly reports",
    "LIST_ID_DOMAIN": "weekly-reports.blt.example",
    # Cron schedules of the weekly run and of the retry sender. The retry
    # sender is offset from the weekly minute: post_office's lock makes a
    # second sender exit without a word.
    "SCHEDULE": "0 9 * * 1",
    "RETRY_SCHEDULE": "5-59/10 * * * *",
    # Forked processes that render, queue and deliver batches of domains
    # side by side while the main process reads the figures.
    "PROCESSES": 1,
    # Forked processes that deliver a batch of mail at once, each over its
    # own SMTP connection.
    "DELIVERY_PROCESSES": 1,
    # Seconds for which mail that run_weekly queued and is about to deliver
    # itself stays out of other senders' sight; after a crash,
    # send_queued_mail delivers it once this has passed.
    "HOLD_SECONDS": 900,
    # Seconds run_weekly waits for one batch handed to a Celery worker.
    "CELERY_BATCH_TIMEOUT": 600,
    # Seconds run_weekly waits for post_office's sender lock before it
    # leaves its queued mail to the retry sender.
    "LOCK_WAIT": 300,
}


def get(key):
    """Return the value of one ``WEEKLY_REPORTS`` key, or its default."""
    if key not in DEFAULTS:
        raise KeyError(f"{key!r} is not a weekly_reports setting.")

    overrides = getattr(settings, "WEEKLY_REPORTS", {}) or {}
    return overrides.get(key, DEFAULTS[key])


def site_url():
    """Return ``SITE_URL`` without a trailing slash."""
    return getattr(settings, "SITE_URL", "http://localhost:8000").rstrip("/")


def post_office_batch_size():
    return getattr(settings, "POST_OFFICE", {}).get("BATCH_SIZE", 100)


def domain_model_name():
    return getattr(settings, "WEEKLY_REPORTS_DOMAIN_MODEL", "website.Domain")


def issue_model_name():
    return getattr(settings, "WEEKLY_REPORTS_ISSUE_MODEL", "website.Issue")


def _get_model(setting_name, value):
    try:
        return apps.get_model(value, require_ready=False)
    except ValueError as error:
        raise ImproperlyConfigured(
            f"{setting_name} must be of the form 'app_label.ModelName', not {value!r}."
        ) from error
    except LookupError as error:
        raise ImproperlyConfigured(
            f"{setting_name} refers to model {value!r}, which is not installed."
        ) from error


def get_domain_model():
    return _get_model("WEEKLY_REPORTS_DOMAIN_MODEL", domain_model_name())


def get_issue_model():
    return _get_model("WEEKLY_REPORTS_ISSUE_MODEL", issue_model_name())
