"""run_weekly handing its batches to two real Celery workers over Redis.

Everything here runs in subprocesses against a PostgreSQL database of its
own, because the workers must see committed rows, and the test database of
pytest-django lives inside a transaction.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from tests.smtp import SMTPServer

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/9"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="Celery workers need a database several processes can write; "
        "the test runs on PostgreSQL.",
    ),
]


def _redis_available():
    import redis

    try:
        return redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError:
        return False


@pytest.fixture
def database_url():
    """A fresh PostgreSQL database, migrated, dropped afterwards."""
    import psycopg2

    base = settings.DATABASES["default"]
    name = f"weekly_reports_celery_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(
        dbname="postgres",
        user=base["USER"],
        host=base["HOST"] or "127.0.0.1",
        port=base["PORT"] or 5432,
        password=base["PASSWORD"],
    )
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')

    credentials = base["USER"] + (f":{base['PASSWORD']}" if base["PASSWORD"] else "")
    host = f"{base['HOST'] or '127.0.0.1'}:{base['PORT'] or 5432}"
    yield f"postgres://{credentials}@{host}/{name}"

    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def environment(database_url):
    """The environment of every subprocess: own database, own queue."""
    if not _redis_available():
        pytest.skip("Redis is not reachable at 127.0.0.1:6379.")

    with SMTPServer() as server:
        env = {
            "PATH": os.environ["PATH"],
            "DATABASE_URL": database_url,
            "EMAIL_URL": f"smtp://127.0.0.1:{server.port}",
            "MAIL_CELERY": "true",
            "CELERY_BROKER_URL": REDIS_URL,
            "CELERY_RESULT_BACKEND": REDIS_URL,
            "CELERY_QUEUE": f"weekly-reports-test-{uuid.uuid4().hex[:8]}",
            "WEEKLY_REPORTS_BATCH_SIZE": "7",
            "SITE_URL": "https://blt.example",
        }
        manage(env, "migrate", "--verbosity", "0")
        yield env, server


def manage(env, *args, timeout=120):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


def start_worker(env, name, log_path):
    log = open(log_path, "w")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "blt",
            "worker",
            "--hostname",
            f"{name}@%h",
            "--queues",
            env["CELERY_QUEUE"],
            "--concurrency",
            "1",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def envelope_address(address):
    """The address as it appears on the wire: an IDN domain in punycode."""
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.encode('idna').decode('ascii')}".casefold()


def wait_for(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_two_workers_deliver_each_report_exactly_once(environment, tmp_path):
    env, server = environment
    manage(env, "seed_demo", "--domains", "40", "--issues", "400", "--seed", "7")
    planned = [
        json.loads(line)
        for line in manage(
            env, "run_weekly", "--week", "2026-W48", "--dry-run", "--json"
        ).stdout.splitlines()
    ]
    expected = Counter(
        envelope_address(report["email"])
        for report in planned
        if report["status"] == "would_send"
    )
    workers = [
        start_worker(env, name, tmp_path / f"{name}.log") for name in ("one", "two")
    ]

    try:
        run = manage(env, "run_weekly", "--week", "2026-W48", timeout=300)
        delivered = wait_for(
            lambda: len(server.received) >= sum(expected.values()), timeout=120
        )
        # Give a duplicate, if there were one, the time to arrive.
        time.sleep(2)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)

    received = Counter(
        envelope_address(recipient)
        for message in server.received
        for recipient in message.rcpt_tos
    )
    assert delivered
    assert received == expected
    assert (
        run.stdout.strip()
        .splitlines()[-1]
        .startswith(f"Weekly reports for 2026-W48: {len(expected)} queued")
    )
    ledger = manage(
        env,
        "shell",
        "-c",
        "from weekly_reports.models import Delivery as D;"
        "print(sorted(set(D.objects.filter(week='2026-W48', status__in="
        "['queued', 'sent', 'failed']).values_list('status', flat=True))))",
    ).stdout.strip()
    assert ledger.splitlines()[-1] == "['sent']"
    for name in ("one", "two"):
        log = (tmp_path / f"{name}.log").read_text()
        assert "weekly_reports.tasks.queue_report_batch" in log, log[-2000:]
