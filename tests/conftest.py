import pytest
from django.core.management import call_command

from tests.smtp import SMTPServer


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on loopback that the project's mail goes to."""
    with SMTPServer() as server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = server.port
        settings.EMAIL_USE_TLS = False
        settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = ""
        settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_TIMEOUT = 10
        yield server


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
