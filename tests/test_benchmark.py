"""The benchmark runs from start to end at a tiny size.

Nothing is timed here: the test keeps ``scripts/benchmark`` working as the
app changes. The benchmark needs PostgreSQL, where it creates a database of
its own; the test drops it afterwards.
"""

import os
import subprocess
import sys
import uuid

import psycopg2
import pytest
from django.conf import settings

from tests.subprocesses import ROOT, is_postgresql

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not is_postgresql(), reason="The benchmark runs on PostgreSQL alone."
    ),
]

ROWS = [
    "setup: seed_demo (not compared)",
    "(a) baseline: queries, 6 per domain",
    "(a) baseline: send_mail, 1 per domain",
    "(a) baseline: whole loop",
    "(b) figures: aggregate + LATERAL SQL, bare",
    "(b) figures: FigureStream, all domains",
    "(b) rendering: ReportTemplate.render",
    "(b) run_weekly --queue-only, PROCESSES=1",
    "(b) run_weekly --queue-only, PROCESSES=2",
    "plain smtplib client, 1 connection(s)",
    "(b) delivery: send_queued_mail --processes 1",
    "plain smtplib client, 2 connection(s)",
    "(b) delivery: send_queued_mail --processes 2",
    "(b) run_weekly, whole job, PROCESSES=1",
    "(b) run_weekly, whole job, PROCESSES=2",
]


def server_url(name):
    database = settings.DATABASES["default"]
    password = f":{database['PASSWORD']}" if database["PASSWORD"] else ""
    host = f"{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}"
    return f"postgres://{database['USER']}{password}@{host}/{name}"


@pytest.fixture(scope="module")
def benchmark_database_url():
    """The URL of a database for the benchmark, dropped at the end."""
    name = f"weekly_reports_benchmark_{uuid.uuid4().hex[:10]}"
    yield server_url(name)

    admin = psycopg2.connect(server_url("postgres"))
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def run_benchmark(database_url, tmp_path, *options):
    """Run the benchmark over 20 domains; return the finished process and the
    table it wrote."""
    table = tmp_path / "benchmark.md"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "benchmark_weekly",
            "--domains",
            "20",
            "--issues",
            "300",
            "--week",
            "2026-W48",
            "--repeat",
            "1",
            "--output",
            str(table),
            "--log-dir",
            str(tmp_path / "logs"),
            *options,
        ],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "DATABASE_URL": database_url,
            "DEBUG": "false",
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result, table.read_text() if table.exists() else ""


def row_names(table):
    return [line.split(" | ")[0].lstrip("| ") for line in table.splitlines()]


@pytest.fixture(scope="module")
def tiny_benchmark(benchmark_database_url, tmp_path_factory):
    """The whole benchmark, once for all the tests here."""
    return run_benchmark(benchmark_database_url, tmp_path_factory.mktemp("full"))


def test_benchmark_writes_a_row_for_every_measurement(tiny_benchmark):
    result, table = tiny_benchmark

    assert result.returncode == 0, result.stderr
    assert [row for row in row_names(table) if row in ROWS] == ROWS


def test_benchmark_finds_the_same_figures_on_both_sides(tiny_benchmark):
    result, table = tiny_benchmark

    assert result.returncode == 0, result.stderr
    assert "; same figures as (a)" in table


def test_benchmark_delivers_every_queued_message(tiny_benchmark):
    result, table = tiny_benchmark

    assert result.returncode == 0, result.stderr
    assert "NOT ALL DELIVERED" not in table


def test_benchmark_lists_every_target_and_judges_those_for_any_size(
    tiny_benchmark,
):
    result, table = tiny_benchmark

    targets = [line for line in table.splitlines() if line.startswith("- ")]
    assert result.returncode == 0, result.stderr
    assert len(targets) == 9
    # The speed-ups against the loop are set for 10,000 domains, and
    # --queue-only for 100,000: five rows, none for 20.
    not_judged = [line for line in targets if line.startswith("- not judged: ")]
    assert len(not_judged) == 5
    assert all("(the target is for " in line for line in not_judged)
    assert all(
        line.startswith(("- met: ", "- MISSED: ", "- not judged: ")) for line in targets
    )


def test_benchmark_without_the_delivery_comparison_times_the_job_once(
    tiny_benchmark, benchmark_database_url, tmp_path
):
    result, table = run_benchmark(
        benchmark_database_url,
        tmp_path,
        "--reuse-data",
        "--skip-baseline",
        "--skip-delivery-comparison",
    )

    assert result.returncode == 0, result.stderr
    assert [row for row in row_names(table) if row in ROWS] == [
        "(b) figures: aggregate + LATERAL SQL, bare",
        "(b) figures: FigureStream, all domains",
        "(b) rendering: ReportTemplate.render",
        "(b) run_weekly --queue-only, PROCESSES=1",
        "(b) run_weekly --queue-only, PROCESSES=2",
        "(b) run_weekly, whole job, PROCESSES=2",
    ]
