"""The app's system checks: a wrong setting is named at start-up."""

import pytest

from weekly_reports.checks import check_settings


def error_ids(settings_errors):
    return [error.id for error in settings_errors]


def test_the_project_settings_pass_every_check():
    assert check_settings(None) == []


@pytest.mark.parametrize("value", [0, -1, 1_000_001, 2**63, "500", True, None])
def test_batch_size_must_be_a_whole_number_in_range(settings, value):
    settings.WEEKLY_REPORTS = {**settings.WEEKLY_REPORTS, "BATCH_SIZE": value}

    (error,) = check_settings(None)

    assert error.id == "weekly_reports.E003"
    assert error.msg == (
        f"WEEKLY_REPORTS['BATCH_SIZE'] must be a whole number from 1 to "
        f"1,000,000, not {value!r}."
    )


def test_unknown_key_is_named(settings):
    settings.WEEKLY_REPORTS = {**settings.WEEKLY_REPORTS, "BATCHSIZE": 10}

    assert error_ids(check_settings(None)) == ["weekly_reports.E002"]


def test_issue_path_without_its_pk_is_refused(settings):
    settings.WEEKLY_REPORTS = {**settings.WEEKLY_REPORTS, "ISSUE_PATH": "/issue/"}

    assert error_ids(check_settings(None)) == ["weekly_reports.E004"]


@pytest.mark.parametrize(
    "site_url", ["blt.example", "ftp://blt.example", "http://exa mple.com"]
)
def test_site_url_must_be_an_absolute_web_address(settings, site_url):
    settings.SITE_URL = site_url

    assert error_ids(check_settings(None)) == ["weekly_reports.E005"]


@pytest.mark.parametrize(
    "schedule", ["61 * * * *", "0 24 * * *", "0 9 * *", "every monday", ""]
)
def test_a_schedule_cron_would_refuse_is_named(settings, schedule):
    settings.WEEKLY_REPORTS = {**settings.WEEKLY_REPORTS, "SCHEDULE": schedule}

    (error,) = check_settings(None)

    assert error.id == "weekly_reports.E006"
    assert error.msg == (
        f"WEEKLY_REPORTS['SCHEDULE'] is not a cron schedule: {schedule!r}."
    )


def test_cronjobs_schedules_are_checked_too(settings):
    settings.CRONJOBS = [*settings.CRONJOBS, ("0 9 * * 8-9", "os.getpid")]

    (error,) = check_settings(None)

    assert error.msg == (
        f"CRONJOBS[{len(settings.CRONJOBS) - 1}] is not a cron schedule: '0 9 * * 8-9'."
    )


@pytest.mark.parametrize("schedule", ["5-59/10 * * * *", "0 9 * * mon", "@weekly"])
def test_schedules_cron_accepts_pass(settings, schedule):
    settings.WEEKLY_REPORTS = {**settings.WEEKLY_REPORTS, "SCHEDULE": schedule}

    assert check_settings(None) == []
