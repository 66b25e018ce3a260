"""Settings of the processes that the crash and concurrency tests start.

They are the project's settings, read from the environment as in production,
plus two knobs that only those tests turn, each through a variable:

``WEEKLY_REPORTS_TEST_HOLD_SECONDS``
    ``WEEKLY_REPORTS["HOLD_SECONDS"]``: how long mail that run_weekly queued
    stays out of other senders' sight.
``WEEKLY_REPORTS_TEST_PAUSE_SQL``
    Installs ``tests.pausing``, which stops the process before a chosen SQL
    statement until the test lets it go.

post_office's sender lock lives in ``TMPDIR``, so two processes given two
temporary directories act as senders on two hosts.
"""

from blt.settings import *  # noqa: F403
from blt.settings import INSTALLED_APPS, WEEKLY_REPORTS, env

WEEKLY_REPORTS = {
    **WEEKLY_REPORTS,
    "HOLD_SECONDS": env.int("WEEKLY_REPORTS_TEST_HOLD_SECONDS", default=900),
}

if env.str("WEEKLY_REPORTS_TEST_PAUSE_SQL", default=""):
    INSTALLED_APPS = [*INSTALLED_APPS, "tests.pausing.PausingConfig"]
