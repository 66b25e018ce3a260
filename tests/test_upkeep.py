"""Upkeep: old mail cleaned on a schedule, the ledger kept, the runbook's
commands, and jobs that fail under cron.

The cron tests reuse the project copy of tests/test_crontab.py and drive the
lines the hardened ``crontab add`` writes, from an empty environment as cron
runs them.
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from post_office.models import Email, Log

from tests import test_crontab
from tests.factories import DomainFactory
from tests.subprocesses import ROOT, WEEK, environment, manage
from tests.test_crontab import CLEANUP_SCHEDULE, cron_command, needs_cron
from tests.test_crontab import manage as manage_copy
from weekly_reports.management.commands.crontab import job_hash
from weekly_reports.models import Delivery

CLEANUP_JOB = (
    "30 3 * * *",
    "django.core.management.call_command",
    ["cleanup_mail", "--days", "90"],
    {},
)
NEVER = "0 0 31 2 *"

# The project copy and the user's crontab, as tests/test_crontab.py has them.
project = test_crontab.project
crontab = test_crontab.crontab


@pytest.fixture
def sent_week(db, site, smtp_server, run_weekly):
    """Two domains whose reports for WEEK went out."""
    for name in ("a.example", "b.example"):
        DomainFactory(name=name, email=f"team@{name}")
    result = run_weekly("--week", WEEK)
    assert result.exit_status == 0, result.stdout
    return smtp_server


def age_mail(days):
    """Make every message and its log look ``days`` old."""
    Email.objects.update(created=timezone.now() - datetime.timedelta(days=days))


def cleanup_mail(*args):
    stdout = StringIO()
    call_command("cleanup_mail", *args, stdout=stdout)
    return stdout.getvalue()


# Old mail is cleaned by a scheduled job


def test_cleanup_mail_is_scheduled_daily_keeping_90_days():
    assert CLEANUP_JOB in django_settings.CRONJOBS


def test_days_kept_and_schedule_come_from_the_environment():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, blt.settings as s; print(json.dumps(s.CRONJOBS[-1]))",
        ],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "MAIL_KEEP_DAYS": "30",
            "MAIL_CLEANUP_SCHEDULE": "15 4 * * 0",
        },
        capture_output=True,
        text=True,
        check=True,
    )

    assert json.loads(result.stdout) == [
        "15 4 * * 0",
        "django.core.management.call_command",
        ["cleanup_mail", "--days", "30"],
        {},
    ]


def test_cleanup_deletes_mail_older_than_the_days_kept(sent_week):
    age_mail(91)

    cleanup_mail("--days", "90")

    assert (Email.objects.count(), Log.objects.count()) == (0, 0)


def test_cleanup_keeps_mail_younger_than_the_days_kept(sent_week):
    age_mail(89)

    cleanup_mail("--days", "90")

    assert Email.objects.count() == 2


def test_cleanup_keeps_every_ledger_row_with_its_state(sent_week):
    age_mail(91)

    cleanup_mail("--days", "90")

    assert list(
        Delivery.objects.order_by("domain_name").values_list(
            "domain_name", "week", "status", "recipients"
        )
    ) == [
        ("a.example", WEEK, "sent", "team@a.example"),
        ("b.example", WEEK, "sent", "team@b.example"),
    ]


def test_cleanup_drops_only_the_ledgers_links_to_the_deleted_mail(sent_week):
    age_mail(91)

    cleanup_mail("--days", "90")

    assert not Delivery.emails.through.objects.exists()


def test_rerun_of_a_cleaned_week_sends_nothing(sent_week, run_weekly):
    age_mail(91)
    cleanup_mail("--days", "90")

    rerun = run_weekly("--week", WEEK)

    assert rerun.last_line == (
        f"Weekly reports for {WEEK}: 0 sent, 0 skipped, 0 failed, 2 already sent"
    )
    assert len(sent_week.received) == 2


def test_cleanup_job_runs_through_crontab_run(sent_week, monkeypatch, tmp_path):
    # The job's lock file goes to the test's directory rather than /tmp.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    age_mail(91)

    call_command("crontab", "run", job_hash(CLEANUP_JOB), stdout=StringIO())

    assert Email.objects.count() == 0
    assert Delivery.objects.count() == 2


# The runbook


def test_resending_one_domains_report_mails_that_domain_only(sent_week, run_weekly):
    result = run_weekly("--week", WEEK, "--domain", "b.example", "--force")

    assert result.last_line == (
        f"Weekly reports for {WEEK}: 1 sent, 0 skipped, 0 failed, 0 already sent"
    )
    assert sent_week.recipients() == [
        "team@a.example",
        "team@b.example",
        "team@b.example",
    ]


def test_rerunning_a_week_whose_server_refused_resends_only_the_failed(
    db, site, smtp_server, run_weekly
):
    for name in ("a.example", "b.example"):
        DomainFactory(name=name, email=f"team@{name}")
    smtp_server.refuse("team@b.example")
    run_weekly("--week", WEEK)
    smtp_server.recover()

    rerun = run_weekly("--week", WEEK)

    assert rerun.last_line == (
        f"Weekly reports for {WEEK}: 1 sent, 0 skipped, 0 failed, 1 already sent"
    )
    assert smtp_server.recipients() == ["team@a.example", "team@b.example"]


# The runbook's "what went out" one-liner, as an operator types it.
WHAT_WENT_OUT = (
    "from weekly_reports.models import Delivery as D; "
    "[print(d.domain_name, d.status, d.reason or d.error, sep='\\t') "
    f"for d in D.objects.filter(week='{WEEK}').order_by('domain_name')]"
)


def test_what_went_out_lists_each_domains_state_for_the_week(
    side_database, smtp_server, tmp_path
):
    env = environment(side_database, smtp_server.port, tmp_path / "tmp")
    smtp_server.refuse("security@app02.example")
    manage(
        env,
        "run_weekly",
        "--week",
        WEEK,
        "--domain",
        "app01.example",
        "--domain",
        "app02.example",
    )

    result = manage(env, "shell", "-v", "0", "-c", WHAT_WENT_OUT)

    assert result.stdout.splitlines() == [
        "app01.example\tsent\t",
        "app02.example\tfailed\tRecipient refused: security@app02.example: 550 5.1.1 "
        "Mailbox unavailable",
    ]


# Jobs under cron


@pytest.fixture
def failing_settings(project):
    """A settings module in the project copy whose one job fails (exit 2)."""
    (project / "blt" / "settings_failing_cron.py").write_text(
        "from blt.settings import *  # noqa: F403\n\n"
        'CRONTAB_DJANGO_SETTINGS_MODULE = "blt.settings_failing_cron"\n'
        "CRONJOBS = [\n"
        f"    ({NEVER!r}, 'django.core.management.call_command',\n"
        "     ['run_weekly', '--week', 'bogus'], {}),\n"
        "]\n"
    )
    return "--settings=blt.settings_failing_cron"


def run_cron_line(line, schedule):
    """Run a crontab line's command as cron does: sh, empty environment."""
    return subprocess.run(
        ["/bin/sh", "-c", cron_command(line, schedule)],
        cwd="/",
        env={},
        capture_output=True,
        text=True,
        check=False,
    )


@needs_cron
def test_job_failing_under_cron_exits_non_zero_and_logs_why(
    project, crontab, failing_settings
):
    crontab.install("")
    manage_copy(project, "crontab", "add", failing_settings, check=True)
    (line,) = crontab.lines()
    log_file = project / "var" / "cron.log"
    log_file.unlink(missing_ok=True)

    result = run_cron_line(line, NEVER)

    assert (result.returncode, result.stdout, result.stderr) == (2, "", "")
    log = log_file.read_text().splitlines()
    job = (
        NEVER,
        "django.core.management.call_command",
        ["run_weekly", "--week", "bogus"],
        {},
    )
    reason = "--week must look like 2026-W48, not 'bogus'."
    assert log[-1] == f"CommandError: Cron job {job} failed: {reason}"
    assert any(
        line.endswith(
            f" ERROR weekly_reports.management.commands.crontab Cron job {job} "
            f"failed: {reason}"
        )
        for line in log
    ), log


@needs_cron
def test_cleanup_line_runs_from_an_empty_environment(project, crontab):
    crontab.install("")
    manage_copy(project, "crontab", "add", check=True)
    cleanup_line = crontab.lines()[2]
    log_file = project / "var" / "cron.log"
    log_file.unlink(missing_ok=True)

    result = run_cron_line(cleanup_line, CLEANUP_SCHEDULE)

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert log_file.read_text().startswith("Deleted 0 mails created before ")


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="compression is PostgreSQL's"
)
@pytest.mark.django_db
def test_mail_bodies_are_compressed_with_lz4_on_postgresql():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname, attcompression FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attname IN ('message', 'html_message')",
            [Email._meta.db_table],
        )
        compression = dict(cursor.fetchall())

    assert compression == {"message": "l", "html_message": "l"}
