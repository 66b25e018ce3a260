"""run_weekly as a shell runs it, in a subprocess on a SQLite file."""

import os
import subprocess
import sys

import pytest

from tests.smtp import free_port
from tests.subprocesses import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample_env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    env = {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "EMAIL_URL": f"filemail:///{folder / 'mail'}",
    }
    for args in (["migrate", "-v", "0"], ["loaddata", "blt_sample", "-v", "0"]):
        subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True
        )
    return env


def test_json_output_cut_short_by_the_reader_still_exits_0(sample_env):
    command = [
        sys.executable,
        "manage.py",
        "run_weekly",
        "--week",
        "2026-W48",
        "--dry-run",
        "--json",
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=sample_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    first_line = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read()
    process.wait(timeout=60)

    assert first_line.startswith('{"domain": "app1.example7.com"')
    assert process.returncode == 0, stderr
    assert "BrokenPipeError" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "Weekly reports for 2026-W48 (dry run): 34 would send, 6 skipped, "
        "0 already sent"
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "WEEKLY_REPORTS_BATCH_SIZE",
            "abc",
            "Configuration error: WEEKLY_REPORTS_BATCH_SIZE is invalid: invalid "
            "literal for int() with base 10: 'abc'",
        ),
        (
            "MAIL_MAX_RETRIES",
            "-1",
            "Configuration error: MAIL_MAX_RETRIES must be from 0 to 2147483647, "
            "not -1.",
        ),
        (
            "EMAIL_URL",
            "bogus://x",
            "Configuration error: EMAIL_URL is invalid: Invalid email schema bogus",
        ),
        (
            "EMAIL_URL",
            "smtp://mail.example:abc",
            "Configuration error: EMAIL_URL is invalid: Port could not be cast to "
            "integer value as 'abc'",
        ),
        (
            "MAIL_RETRY_MINUTES",
            "99999999999999999999",
            "Configuration error: MAIL_RETRY_MINUTES must be from 0 to 2147483647, "
            "not 99999999999999999999.",
        ),
        (
            "TIME_ZONE",
            "",
            "Configuration error: TIME_ZONE is empty; name a zone such as UTC.",
        ),
        (
            "EMAIL_TIMEOUT",
            "0",
            "Configuration error: EMAIL_TIMEOUT must be from 1 to 2147483647, not 0.",
        ),
        (
            "TIME_ZONE",
            "Mars/Base",
            "Configuration error: Incorrect timezone setting: Mars/Base",
        ),
        (
            "DATABASE_URL",
            "mysql://root@127.0.0.1/blt",
            "Configuration error: DATABASE_URL has the unknown scheme 'mysql'; use "
            "postgres://USER@HOST:PORT/NAME or sqlite:////absolute/path.",
        ),
        (
            "DATABASE_URL",
            "foo://bar",
            "Configuration error: DATABASE_URL has the unknown scheme 'foo'; use "
            "postgres://USER@HOST:PORT/NAME or sqlite:////absolute/path.",
        ),
    ],
)
def test_bad_setting_in_the_environment_is_one_line_and_exit_2(
    sample_env, variable, value, message
):
    result = subprocess.run(
        [sys.executable, "manage.py", "run_weekly", "--dry-run"],
        cwd=ROOT,
        env={**sample_env, variable: value},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.splitlines() == [message]


def test_unreachable_database_is_one_line_and_exit_2(sample_env):
    result = subprocess.run(
        [sys.executable, "manage.py", "run_weekly", "--dry-run"],
        cwd=ROOT,
        env={
            **sample_env,
            "DATABASE_URL": f"postgres://nobody@127.0.0.1:{free_port()}/x",
        },
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("CommandError: The database cannot be reached: ")
    assert "Connection refused" in line


def test_settings_option_is_read_before_the_settings_are_checked(sample_env):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--settings=blt.no_such_settings"],
        cwd=ROOT,
        env=sample_env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "Configuration error: No module named 'blt.no_such_settings'"
    ]


def test_unmigrated_database_is_one_line_and_exit_2(sample_env, tmp_path):
    empty = tmp_path / "empty.sqlite3"

    result = subprocess.run(
        [sys.executable, "manage.py", "run_weekly", "--dry-run"],
        cwd=ROOT,
        env={**sample_env, "DATABASE_URL": f"sqlite:///{empty}"},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"CommandError: The database {empty} has no weekly reports tables; run "
        "'python manage.py migrate' first."
    ]
