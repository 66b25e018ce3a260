import os

import pytest
from django.core.management import call_command

from tests.smtp import SMTPServer
from tests.subprocesses import (
    ROOT,
    PausePoint,
    Process,
    SideDatabases,
    environment,
    manage,
    seed_fixture,
    write_fixture,
)

# Domains in the side databases' template: app01.example to app12.example.
SEEDED_DOMAINS = 12


def send_mail_to(settings, server):
    """Point the project's mail at ``server``, running or not."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 10


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on loopback that the project's mail goes to."""
    with SMTPServer() as server:
        send_mail_to(settings, server)
        yield server


@pytest.fixture
def stopped_smtp_server(settings):
    """The project's mail goes to this SMTP server, which is down until the
    test calls its ``start()``."""
    server = SMTPServer()
    send_mail_to(settings, server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def side_databases(tmp_path_factory):
    """Maker of databases for subprocesses; drops them all at the end."""
    databases = SideDatabases(tmp_path_factory.mktemp("side-databases"))
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def side_template(side_databases, tmp_path_factory):
    """A migrated side database with SEEDED_DOMAINS domains, to be copied."""
    template = side_databases.create()
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "tests.settings_subprocess",
        "DATABASE_URL": template.url,
    }
    fixture = write_fixture(
        tmp_path_factory.mktemp("seed") / "domains.json", seed_fixture(SEEDED_DOMAINS)
    )
    for args in (["migrate", "--no-input"], ["loaddata", str(fixture)]):
        result = manage(env, *args, timeout=120)
        if result.returncode:
            pytest.fail(
                f"manage.py {' '.join(args)} failed in {ROOT}:\n{result.stderr}"
            )
    return template


@pytest.fixture
def side_database(side_databases, side_template):
    """A fresh copy of the seeded template, for one test's subprocesses."""
    database = side_databases.create(template=side_template)
    yield database
    side_databases.drop(database)


@pytest.fixture
def site(settings):
    settings.SITE_URL = "https://blt.example"
    settings.DEFAULT_FROM_EMAIL = "OWASP BLT <reports@blt.example>"
    settings.WEEKLY_REPORTS = {"LIST_ID_DOMAIN": "weekly-reports.blt.example"}
    return settings


class CommandResult:
    def __init__(self, exit_status, stdout, stderr):
        self.exit_status = exit_status
        self.stdout = stdout
        self.stderr = stderr

    @property
    def last_line(self):
        lines = (self.stderr or self.stdout).strip().splitlines()
        return lines[-1] if lines else ""


@pytest.fixture
def run_weekly():
    """Call run_weekly in-process; return its exit status and output."""
    from io import StringIO

    def run(*args):
        stdout, stderr = StringIO(), StringIO()
        try:
            call_command("run_weekly", *args, stdout=stdout, stderr=stderr)
            status = 0
        except SystemExit as exit:
            status = exit.code
        return CommandResult(status, stdout.getvalue(), stderr.getvalue())

    return run


@pytest.fixture
def background(tmp_path):
    """Start ``manage.py`` processes in the background; whatever still runs
    when the test ends is killed."""
    started = []

    def start(env, *args):
        process = Process(env, *args, output_dir=tmp_path)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.popen.poll() is None:
            process.kill()


@pytest.fixture
def subprocess_env(side_database, smtp_server, tmp_path):
    """Make the environment of a subprocess working on this test's side
    database and SMTP server, in batches of four domains.

    ``host`` names the process's temporary directory, where post_office's
    sender lock lives: processes of two hosts do not share it.
    """

    def make(host="host", **variables):
        return environment(
            side_database,
            smtp_server.port,
            tmp_path / host,
            WEEKLY_REPORTS_BATCH_SIZE=4,
            **variables,
        )

    return make


@pytest.fixture
def pause_at(tmp_path):
    """Make a PausePoint: before the ``nth`` statement holding ``sql``."""

    def point(sql, nth=1):
        return PausePoint(tmp_path / "pause", sql, nth)

    return point


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Test users log in without a second of key stretching each time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# Browser screenshots (tests/test_browser.py) and where the run prints them.
SCREENSHOTS = pytest.StashKey[object]()


@pytest.fixture(scope="session")
def screenshot_dir(request, tmp_path_factory):
    """The folder of this run's browser screenshots."""
    folder = tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(exist_ok=True)
    request.config.stash[SCREENSHOTS] = folder
    return folder


def pytest_terminal_summary(terminalreporter, config):
    folder = config.stash.get(SCREENSHOTS, None)
    if folder is not None:
        terminalreporter.write_sep("-", f"browser screenshots in {folder}")
