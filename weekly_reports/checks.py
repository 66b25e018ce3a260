"""System checks: a wrong setting is reported at start-up with a hint,
rather than halfway through a weekly run."""

from croniter import croniter
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import URLValidator

from . import conf

# Far above any sensible value, and below what a database's integer takes:
# a batch of 2**63 domains failed in the middle of a run.
_LARGEST = 1_000_000


@checks.register()
def check_settings(app_configs, **kwargs):
    errors = []

    for getter, setting, example in [
        (conf.get_domain_model, "WEEKLY_REPORTS_DOMAIN_MODEL", "website.Domain"),
        (conf.get_issue_model, "WEEKLY_REPORTS_ISSUE_MODEL", "website.Issue"),
    ]:
        try:
            getter()
        except ImproperlyConfigured as error:
            errors.append(
                checks.Error(
                    str(error),
                    hint=f"Set {setting} to the host's model, such as {example!r}.",
                    id="weekly_reports.E001",
                )
            )

    overrides = getattr(settings, "WEEKLY_REPORTS", {}) or {}
    unknown = sorted(set(overrides) - set(conf.DEFAULTS))
    if unknown:
        errors.append(
            checks.Error(
                f"WEEKLY_REPORTS has unknown keys: {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(sorted(conf.DEFAULTS))}.",
                id="weekly_reports.E002",
            )
        )

    positive_integers = (
        "RECENT_ISSUES",
        "DESCRIPTION_LENGTH",
        "BATCH_SIZE",
        "PROCESSES",
        "DELIVERY_PROCESSES",
        "HOLD_SECONDS",
        "CELERY_BATCH_TIMEOUT",
    )
    for key in positive_integers:
        value = conf.get(key) if key not in unknown else None
        is_number = isinstance(value, int) and not isinstance(value, bool)
        if not is_number or not 1 <= value <= _LARGEST:
            errors.append(
                checks.Error(
                    f"WEEKLY_REPORTS[{key!r}] must be a whole number from 1 to "
                    f"{_LARGEST:,}, not {value!r}.",
                    id="weekly_reports.E003",
                )
            )

    if "{pk}" not in conf.get("ISSUE_PATH"):
        errors.append(
            checks.Error(
                "WEEKLY_REPORTS['ISSUE_PATH'] must contain '{pk}'.",
                hint="BLT's issue pages live at '/issue/{pk}/'.",
                id="weekly_reports.E004",
            )
        )

    site_url = conf.site_url()
    if not _is_web_url(site_url):
        errors.append(
            checks.Error(
                f"SITE_URL must be an absolute http(s) URL, not {site_url!r}.",
                hint="Links and the unsubscribe header are built from it.",
                id="weekly_reports.E005",
            )
        )

    errors.extend(_check_schedules())
    return errors


def _is_web_url(url):
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        return False
    return True


def _check_schedules():
    """Cron refuses a schedule such as "61 * * * *" only when `crontab add`
    installs it; said at start-up, it is fixed before the week it would
    have missed."""
    schedules = [
        (f"WEEKLY_REPORTS[{key!r}]", conf.get(key))
        for key in ("SCHEDULE", "RETRY_SCHEDULE")
    ]
    schedules += [
        (f"CRONJOBS[{number}]", job[0])
        for number, job in enumerate(getattr(settings, "CRONJOBS", []))
        if job
    ]
    return [
        checks.Error(
            f"{name} is not a cron schedule: {schedule!r}.",
            hint="Five fields: minute (0-59), hour (0-23), day of month "
            "(1-31), month (1-12) and day of week (0-7), such as '0 9 * * 1'.",
            id="weekly_reports.E006",
        )
        for name, schedule in schedules
        if not (isinstance(schedule, str) and croniter.is_valid(schedule))
    ]
