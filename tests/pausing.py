"""Stops a test's subprocess before a chosen SQL statement.

Installed by ``tests/settings_subprocess.py`` when
``WEEKLY_REPORTS_TEST_PAUSE_SQL`` is set. Before the n-th statement whose SQL
holds that text (``WEEKLY_REPORTS_TEST_PAUSE_NTH``, 1 by default) the process
writes a file ``paused-<pid>`` into ``WEEKLY_REPORTS_TEST_PAUSE_DIR`` and waits
until a file named ``release`` appears there. A test can thus kill a process
at a known point of its work rather than after a guessed delay, or start two
processes and let them go at the same moment.
"""

import os
import time
from pathlib import Path

from django.apps import AppConfig
from django.db.backends.signals import connection_created

_statements_seen = 0


class PausingConfig(AppConfig):
    name = "tests"
    label = "weekly_reports_test_pausing"

    def ready(self):
        connection_created.connect(_watch)


def _watch(sender, connection, **kwargs):
    if _pause_before not in connection.execute_wrappers:
        connection.execute_wrappers.append(_pause_before)


def _pause_before(execute, sql, params, many, context):
    global _statements_seen

    if os.environ["WEEKLY_REPORTS_TEST_PAUSE_SQL"] in sql:
        _statements_seen += 1
        if _statements_seen == int(os.environ.get("WEEKLY_REPORTS_TEST_PAUSE_NTH", 1)):
            _wait_for_release(Path(os.environ["WEEKLY_REPORTS_TEST_PAUSE_DIR"]), sql)
    return execute(sql, params, many, context)


def _wait_for_release(directory, sql):
    (directory / f"paused-{os.getpid()}").write_text(sql)
    while not (directory / "release").exists():
        time.sleep(0.01)
