"""manage.py in subprocesses, each test with a database of its own.

pytest-django keeps a test's rows inside a transaction that no other process
sees, so the tests that start processes, kill them or run two at once give
those processes a database of their own instead: a copy of a template that is
migrated and seeded once per session. It lives beside the test database, on
the same PostgreSQL server or as an SQLite file, and the tests read it with
plain SQL.
"""

import datetime
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
WEEK = "2026-W48"
# Wednesday noon of 2026-W48, when every seeded issue was reported.
IN_WEEK = datetime.datetime(2026, 11, 25, 12, tzinfo=datetime.UTC)


def is_postgresql():
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def seed_fixture(domain_count):
    """A loaddata fixture: ``appNN.example`` domains, each with one issue
    reported in WEEK and the contact address ``security@appNN.example``."""
    created = IN_WEEK.isoformat()
    objects = []
    for n in range(1, domain_count + 1):
        name = f"app{n:02d}.example"
        objects += [
            {
                "model": "website.organization",
                "pk": n,
                "fields": {
                    "name": f"Organization {n:02d}",
                    "url": f"https://organization{n:02d}.example",
                    "created": created,
                    "modified": created,
                },
            },
            {
                "model": "website.domain",
                "pk": n,
                "fields": {
                    "organization": n,
                    "name": name,
                    "url": f"https://{name}/",
                    "email": address_of(n),
                    "is_active": True,
                    "created": created,
                    "modified": created,
                },
            },
            {
                "model": "website.issue",
                "pk": n,
                "fields": {
                    "domain": n,
                    "url": f"https://{name}/login",
                    "description": f"Login form of {name} leaks the session id",
                    "status": "open",
                    "views": n,
                    "label": 4,
                    "created": created,
                    "modified": created,
                    "is_hidden": False,
                },
            },
        ]
    return objects


def address_of(n):
    return f"security@app{n:02d}.example"


def addresses(first, last):
    """The seeded domains' addresses from ``first`` to ``last``, inclusive."""
    return [address_of(n) for n in range(first, last + 1)]


class SideDatabase:
    """A database outside pytest-django's, named by ``url``."""

    def __init__(self, url, name):
        self.url = url
        self.name = name

    def query(self, sql):
        """Run one SELECT; return its rows as tuples."""
        return self._run(sql, fetch=True)

    def execute(self, sql):
        """Run and commit one statement that changes rows."""
        self._run(sql, fetch=False)

    def _run(self, sql, fetch):
        if is_postgresql():
            import psycopg2

            connection = psycopg2.connect(self.url)
        else:
            connection = sqlite3.connect(self.name)
        try:
            with connection:
                cursor = connection.cursor()
                cursor.execute(sql)
                return cursor.fetchall() if fetch else None
        finally:
            connection.close()

    def value(self, sql):
        ((value,),) = self.query(sql)
        return value

    def ledger(self):
        """``{domain name: (status, reason, error)}`` for WEEK."""
        return {
            name: (status, reason, error)
            for name, status, reason, error in self.query(
                "SELECT domain_name, status, reason, error "
                f"FROM weekly_reports_delivery WHERE week = '{WEEK}'"
            )
        }


class SideDatabases:
    """Creates and drops side databases on the test database's server."""

    def __init__(self, directory):
        self.directory = directory
        self.created = []

    def create(self, template=None):
        name = f"weekly_reports_side_{uuid.uuid4().hex[:10]}"
        if is_postgresql():
            clause = f' TEMPLATE "{template.name}"' if template else ""
            self._admin(f'CREATE DATABASE "{name}"{clause}')
            database = SideDatabase(self._postgresql_url(name), name)
        else:
            path = self.directory / f"{name}.sqlite3"
            if template:
                shutil.copyfile(template.name, path)
            database = SideDatabase(f"sqlite:///{path}", str(path))
        self.created.append(database)
        return database

    def drop(self, database):
        if is_postgresql():
            self._admin(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
        else:
            Path(database.name).unlink(missing_ok=True)
        self.created.remove(database)

    def drop_all(self):
        for database in reversed(self.created):
            self.drop(database)

    def _admin(self, statement):
        import psycopg2

        connection = psycopg2.connect(self._postgresql_url("postgres"))
        connection.autocommit = True
        try:
            connection.cursor().execute(statement)
        finally:
            connection.close()

    @staticmethod
    def _postgresql_url(name):
        base = settings.DATABASES["default"]
        credentials = base["USER"] + (
            f":{base['PASSWORD']}" if base["PASSWORD"] else ""
        )
        host = f"{base['HOST'] or '127.0.0.1'}:{base['PORT'] or 5432}"
        return f"postgres://{credentials}@{host}/{name}"


def environment(database, smtp_port, tmp_dir, **variables):
    """The whole environment of a subprocess: nothing of the test's own but
    PATH, as under cron."""
    os.makedirs(tmp_dir, exist_ok=True)
    return {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "tests.settings_subprocess",
        "DATABASE_URL": database.url,
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "EMAIL_TIMEOUT": "10",
        "SITE_URL": "https://blt.example",
        "TMPDIR": str(tmp_dir),
        "PYTHONUNBUFFERED": "1",
        **{key: str(value) for key, value in variables.items()},
    }


def manage(env, *args, timeout=60):
    """Run ``manage.py`` to its end; return the CompletedProcess."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Process:
    """A ``manage.py`` process running in the background; its output goes to
    files, so a full pipe can never stall it."""

    def __init__(self, env, *args, output_dir):
        self.name = f"{args[0]}-{uuid.uuid4().hex[:6]}"
        self.stdout_path = output_dir / f"{self.name}.out"
        self.stderr_path = output_dir / f"{self.name}.err"
        with open(self.stdout_path, "w") as stdout, open(self.stderr_path, "w") as err:
            self.popen = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), *args],
                cwd=ROOT,
                env=env,
                stdout=stdout,
                stderr=err,
                text=True,
            )

    def wait(self, timeout=60):
        return self.popen.wait(timeout)

    def kill(self):
        """SIGKILL, then reap the process, so that its pid is free again and
        post_office's lock sees it gone."""
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    @property
    def stdout(self):
        return self.stdout_path.read_text()

    @property
    def stderr(self):
        return self.stderr_path.read_text()

    def last_line(self):
        lines = self.stdout.strip().splitlines()
        return lines[-1] if lines else ""


class PausePoint:
    """Where the processes given ``env()`` stop: before the ``nth``
    statement whose SQL holds ``sql`` (see tests/pausing.py)."""

    def __init__(self, directory, sql, nth=1):
        self.directory = directory
        self.sql = sql
        self.nth = nth
        directory.mkdir(parents=True, exist_ok=True)

    def env(self):
        return {
            "WEEKLY_REPORTS_TEST_PAUSE_SQL": self.sql,
            "WEEKLY_REPORTS_TEST_PAUSE_NTH": self.nth,
            "WEEKLY_REPORTS_TEST_PAUSE_DIR": self.directory,
        }

    def wait_for(self, *processes, timeout=30):
        """Block until each of these processes has stopped here."""
        wanted = {f"paused-{process.popen.pid}" for process in processes}
        deadline = time.monotonic() + timeout
        while not wanted <= {path.name for path in self.directory.iterdir()}:
            for process in processes:
                if process.popen.poll() is not None:
                    raise AssertionError(
                        f"{process.name} ended before pausing:\n{process.stderr}"
                    )
            if time.monotonic() > deadline:
                raise TimeoutError(f"Not every process paused within {timeout} s.")
            time.sleep(0.01)

    def release(self):
        (self.directory / "release").touch()


def write_fixture(path, objects):
    path.write_text(json.dumps(objects))
    return path
