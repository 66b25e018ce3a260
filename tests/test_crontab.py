"""The hardened ``crontab`` command against the machine's real crontab.

Each test works on a copy of the project in a directory whose name holds a
space and a quote, configured only through its ``.env`` file, and drives it
through ``manage.py`` in a subprocess with an empty environment, as cron
does. The crontab of the user running the tests is restored afterwards.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from weekly_reports.management.commands.crontab import job_hash

CRONTAB = "/usr/bin/crontab"
SOURCE = Path(__file__).resolve().parent.parent

# Schedules that never fire (February 31st), so a cron daemon running on the
# machine cannot start the copy's jobs while a test has them installed.
SCHEDULE = "0 0 31 2 *"
RETRY_SCHEDULE = "1 0 31 2 *"
CLEANUP_SCHEDULE = "2 0 31 2 *"
RUN_WEEKLY = (SCHEDULE, "django.core.management.call_command", ["run_weekly"], {})
SEND_QUEUED = (
    RETRY_SCHEDULE,
    "django.core.management.call_command",
    ["send_queued_mail"],
    {},
)
CLEANUP_MAIL = (
    CLEANUP_SCHEDULE,
    "django.core.management.call_command",
    ["cleanup_mail", "--days", "90"],
    {},
)

EXITS_3 = ("* * * * *", "sys.exit", [3])
BAD_WEEK = (
    "* * * * *",
    "django.core.management.call_command",
    ["run_weekly", "--week", "bogus"],
    {},
)
RAISES = ("* * * * *", "os.remove", ["/nonexistent/weekly-reports-test"])
SUCCEEDS = ("* * * * *", "os.getcwd")

needs_cron = pytest.mark.skipif(
    not os.path.exists(CRONTAB),
    reason=f"{CRONTAB} is missing; install Debian's cron package to run the "
    "crontab tests (apt-get install cron).",
)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A migrated copy of the project, set up only by its ``.env`` file."""
    root = tmp_path_factory.mktemp("crontab")
    copy = root / "blt project's copy"
    shutil.copytree(
        SOURCE,
        copy,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".git",
            ".env",
            "db.sqlite3",
            "sent_mail",
            "var",
            "__pycache__",
            ".pytest_cache",
            ".ruff_cache",
        ),
    )

    (copy / ".env").write_text(
        f"DATABASE_URL=sqlite:///{root / 'reports.sqlite3'}\n"
        "EMAIL_URL=filemail:///mail_from_env\n"
        "SITE_URL=https://blt.example\n"
        f'WEEKLY_REPORTS_SCHEDULE="{SCHEDULE}"\n'
        f'WEEKLY_REPORTS_RETRY_SCHEDULE="{RETRY_SCHEDULE}"\n'
        f'MAIL_CLEANUP_SCHEDULE="{CLEANUP_SCHEDULE}"\n'
    )
    (copy / "blt" / "settings_failing_jobs.py").write_text(
        "from blt.settings import *  # noqa: F403\n\n"
        f"CRONJOBS = [{EXITS_3!r}, {BAD_WEEK!r}, {RAISES!r}, {SUCCEEDS!r}]\n"
    )
    (copy / "blt" / "settings_without_cron.py").write_text(
        "from blt.settings import *  # noqa: F403\n\n"
        'CRONTAB_EXECUTABLE = "/nonexistent/crontab"\n'
    )

    manage(copy, "migrate", "--no-input", check=True)
    manage(
        copy,
        "shell",
        "-c",
        "from blt.website.models import Domain; Domain.objects.create("
        "name='acme.example', url='https://acme.example', "
        "email='security@acme.example')",
        check=True,
    )
    return copy


@pytest.fixture
def crontab():
    """Give the test the user's crontab, and put the original back after."""
    before = subprocess.run(
        [CRONTAB, "-l"], capture_output=True, text=True, check=False
    )
    if before.returncode and "no crontab for" not in before.stderr:
        pytest.fail(f"crontab -l failed, so it could not be saved: {before.stderr}")

    yield UserCrontab()

    if before.returncode:
        subprocess.run([CRONTAB, "-r"], capture_output=True, check=False)
    else:
        subprocess.run([CRONTAB, "-"], input=before.stdout, text=True, check=True)


class UserCrontab:
    """The crontab of the user running the tests, read and written directly."""

    def install(self, text):
        subprocess.run([CRONTAB, "-"], input=text, text=True, check=True)

    def text(self):
        result = subprocess.run(
            [CRONTAB, "-l"], capture_output=True, text=True, check=False
        )
        return result.stdout

    def lines(self):
        return self.text().splitlines()


def manage(project, *args, env=None, check=False):
    """Run the copy's manage.py without the test's environment, as cron does."""
    result = subprocess.run(
        [sys.executable, str(project / "manage.py"), *args],
        cwd=project,
        env=env or {},
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode:
        pytest.fail(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result


def expected_line(project, schedule):
    quote = shlex.quote
    before_hash = (
        f"{schedule} {{ cd {quote(str(project))} && {quote(sys.executable)} "
        f"{quote(str(project / 'manage.py'))} crontab run "
    )
    after_hash = (
        f" --settings=blt.settings; }} >> "
        f"{quote(str(project / 'var' / 'cron.log'))} 2>&1 "
        f"# weekly_reports for {project}"
    )
    return re.compile(re.escape(before_hash) + "[0-9a-f]{32}" + re.escape(after_hash))


def run_job(project, job):
    """Run ``job`` of the copy's failing-jobs settings through ``crontab run``.

    Its lock file goes to the test's own directory rather than /tmp.
    """
    return manage(
        project,
        "crontab",
        "run",
        job_hash(job),
        "--settings=blt.settings_failing_jobs",
        env={"TMPDIR": str(project.parent)},
    )


def cron_command(line, schedule):
    """The shell command cron runs for ``line``: "\\%" in it stands for "%"."""
    assert line.startswith(schedule + " ")
    return line[len(schedule) + 1 :].replace("\\%", "%")


@needs_cron
def test_add_writes_one_quoted_absolute_line_per_job(project, crontab):
    crontab.install("")

    result = manage(project, "crontab", "add")

    assert result.returncode == 0, result.stderr
    lines = crontab.lines()
    assert len(lines) == 3
    assert expected_line(project, SCHEDULE).fullmatch(lines[0])
    assert expected_line(project, RETRY_SCHEDULE).fullmatch(lines[1])
    assert expected_line(project, CLEANUP_SCHEDULE).fullmatch(lines[2])


@needs_cron
def test_add_creates_the_log_directory(project, crontab):
    shutil.rmtree(project / "var", ignore_errors=True)

    manage(project, "crontab", "add", check=True)

    assert (project / "var").is_dir()


@needs_cron
def test_add_twice_keeps_one_line_per_job(project, crontab):
    crontab.install("")
    manage(project, "crontab", "add", check=True)
    first = crontab.text()

    manage(project, "crontab", "add", check=True)

    assert crontab.text() == first


@needs_cron
def test_add_replaces_a_line_whose_job_left_cronjobs(project, crontab):
    stale = "0" * 32
    crontab.install(
        f"{SCHEDULE} true crontab run {stale} # weekly_reports for {project}\n"
    )

    result = manage(project, "crontab", "add")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        f"removing cronjob: ({stale}) -> not in CRONJOBS any more"
    )
    assert stale not in crontab.text()
    assert len(crontab.lines()) == 3


@needs_cron
def test_show_lists_every_job(project, crontab):
    crontab.install("")
    manage(project, "crontab", "add", check=True)

    result = manage(project, "crontab", "show")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Currently active jobs in crontab:",
        f"({job_hash(RUN_WEEKLY)}) -> {RUN_WEEKLY}",
        f"({job_hash(SEND_QUEUED)}) -> {SEND_QUEUED}",
        f"({job_hash(CLEANUP_MAIL)}) -> {CLEANUP_MAIL}",
    ]


@needs_cron
def test_show_says_when_no_job_is_installed(project, crontab):
    crontab.install("")

    result = manage(project, "crontab", "show")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Currently active jobs in crontab:",
        "  none; 'python manage.py crontab add' installs them",
    ]


@needs_cron
def test_remove_leaves_every_other_line_untouched(project, crontab):
    others = (
        "MAILTO=ops@blt.example\n"
        f"{SCHEDULE} /bin/true # someone else's job\n"
        f"{SCHEDULE} /bin/true # weekly_reports for /srv/another checkout\n"
    )
    crontab.install(others)
    manage(project, "crontab", "add", check=True)

    result = manage(project, "crontab", "remove")

    assert result.returncode == 0, result.stderr
    assert crontab.text() == others


@needs_cron
def test_added_line_runs_run_weekly_from_an_empty_environment(project, crontab):
    crontab.install("")
    manage(project, "crontab", "add", check=True)
    line = crontab.lines()[0]

    result = subprocess.run(
        ["/bin/sh", "-c", cron_command(line, SCHEDULE)],
        cwd="/",
        env={},
        capture_output=True,
        text=True,
        check=False,
    )

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    log = (project / "var" / "cron.log").read_text()
    summary = re.compile(
        r"Weekly reports for \d{4}-W\d{2}: 1 sent, 0 skipped, 0 failed, "
        r"0 already sent"
    )
    assert [line for line in log.splitlines() if summary.fullmatch(line)], log
    assert len(list((project / "mail_from_env").iterdir())) == 1


@needs_cron
def test_add_refuses_a_schedule_cron_would_refuse_before_touching_the_crontab(
    project, crontab
):
    crontab.install(f"{SCHEDULE} /bin/true # someone else's job\n")

    result = manage(
        project, "crontab", "add", env={"WEEKLY_REPORTS_SCHEDULE": "61 * * * *"}
    )

    assert result.returncode == 1
    assert (
        "(weekly_reports.E006) WEEKLY_REPORTS['SCHEDULE'] is not a cron schedule: "
        "'61 * * * *'." in result.stderr
    )
    assert crontab.lines() == [f"{SCHEDULE} /bin/true # someone else's job"]


@needs_cron
def test_add_leaves_the_crontab_as_it_was_when_crontab_refuses_it(project, crontab):
    crontab.install(f"{SCHEDULE} /bin/true # someone else's job\n")

    # Past the system check, as a schedule that croniter accepts and this
    # cron does not would be.
    result = manage(
        project,
        "crontab",
        "add",
        "--skip-checks",
        env={"WEEKLY_REPORTS_SCHEDULE": "61 * * * *"},
    )

    assert result.returncode == 1
    assert re.fullmatch(
        re.escape(f"CommandError: {CRONTAB} refused the new crontab, which was left ")
        + r'as it was: "-":\d+: bad minute; errors in crontab file, can\'t '
        r"install\. Check the schedules in CRONJOBS\.",
        result.stderr.splitlines()[-1],
    )
    assert crontab.lines() == [f"{SCHEDULE} /bin/true # someone else's job"]


@pytest.mark.parametrize("subcommand", ["add", "show", "remove"])
def test_subcommand_fails_clearly_without_a_crontab_program(project, subcommand):
    result = manage(
        project, "crontab", subcommand, "--settings=blt.settings_without_cron"
    )

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "CommandError: Cannot run the crontab program '/nonexistent/crontab': "
        "No such file or directory. Install cron (on Debian: apt-get install "
        "cron) or set CRONTAB_EXECUTABLE to its path."
    )


def test_run_exits_with_the_status_the_job_passed_to_sys_exit(project):
    result = run_job(project, EXITS_3)

    assert result.returncode == 3
    assert result.stderr.splitlines()[-1] == (
        f"CommandError: Cron job {EXITS_3} exited with status 3."
    )


def test_run_keeps_the_exit_status_of_a_command_that_failed(project):
    result = run_job(project, BAD_WEEK)

    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"CommandError: Cron job {BAD_WEEK} failed: --week must look like "
        "2026-W48, not 'bogus'."
    )


def test_run_logs_the_traceback_and_exits_1_when_the_job_raises(project):
    result = run_job(project, RAISES)

    assert result.returncode == 1
    assert (
        f"ERROR weekly_reports.management.commands.crontab Cron job {RAISES} "
        "failed." in result.stderr
    )
    assert "Traceback (most recent call last):" in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"CommandError: Cron job {RAISES} failed: FileNotFoundError(2, "
        "'No such file or directory')"
    )


def test_run_exits_0_when_the_job_succeeds(project):
    result = run_job(project, SUCCEEDS)

    assert (result.returncode, result.stderr) == (0, "")


def test_run_with_an_unknown_hash_says_to_add_the_jobs_again(project):
    stale = "0" * 32

    result = manage(project, "crontab", "run", stale)

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"CommandError: No job with hash {stale} in CRONJOBS: the crontab is out "
        'of date. Run "python manage.py crontab add" again.'
    )
