"""Two senders at once: each report still goes out once.

The processes run ``manage.py`` against a database of their own holding
twelve domains. Two processes "started together" both stop before their
first query (tests/pausing.py) and are let go at the same moment once both
are there. Given two temporary directories, they do not share post_office's
sender lock, as on two hosts, so only the row claims keep them apart.
"""

from collections import Counter

import pytest

from tests.conftest import SEEDED_DOMAINS
from tests.subprocesses import WEEK, addresses, is_postgresql

pytestmark = pytest.mark.slow

EVERY_ADDRESS = Counter(addresses(1, SEEDED_DOMAINS))
# The first statement of run_weekly: it reads the email template.
STARTING_RUN = 'FROM "post_office_emailtemplate"'
# The first statement of send_queued_mail once it holds the sender lock.
STARTING_SENDER = 'FROM "post_office_email"'

postgresql_only = pytest.mark.skipif(
    not is_postgresql(),
    reason="SQLite lets one process write at a time, so two processes started "
    "together are tested on PostgreSQL (set DATABASE_URL).",
)


@pytest.fixture
def two_started_together(subprocess_env, background, pause_at):
    """Start two processes of ``args``, on two hosts unless ``one_host``; let
    both reach their first statement holding ``sql``, then let them go at
    once; wait for both to end and return them."""

    def start(sql, *args, one_host=False):
        barrier = pause_at(sql)
        hosts = ("host-a", "host-a") if one_host else ("host-a", "host-b")
        first, second = (
            background(subprocess_env(host, **barrier.env()), *args) for host in hosts
        )
        barrier.wait_for(first, second)
        barrier.release()
        first.wait(60)
        second.wait(60)
        return first, second

    return start


@pytest.fixture
def queued_week(subprocess_env, background):
    """Queue the week's twelve reports, leaving delivery to a sender."""
    run = background(subprocess_env(), "run_weekly", "--week", WEEK, "--queue-only")
    run.wait(60)
    assert run.last_line() == (
        f"Weekly reports for {WEEK}: 12 queued, 0 skipped, 0 failed, 0 already sent"
    )


@postgresql_only
def test_two_runs_started_together_send_each_report_once(
    two_started_together, smtp_server
):
    two_started_together(STARTING_RUN, "run_weekly", "--week", WEEK)

    assert Counter(smtp_server.recipients()) == EVERY_ADDRESS


@postgresql_only
def test_two_runs_started_together_both_exit_0(two_started_together):
    runs = two_started_together(STARTING_RUN, "run_weekly", "--week", WEEK)

    assert [run.popen.returncode for run in runs] == [0, 0], [r.stderr for r in runs]


@postgresql_only
def test_two_runs_started_together_on_one_host_send_each_report_once(
    two_started_together, smtp_server
):
    runs = two_started_together(
        STARTING_RUN, "run_weekly", "--week", WEEK, one_host=True
    )

    assert [run.popen.returncode for run in runs] == [0, 0], [r.stderr for r in runs]
    assert Counter(smtp_server.recipients()) == EVERY_ADDRESS


@postgresql_only
def test_two_runs_started_together_leave_every_report_sent_in_the_ledger(
    two_started_together, side_database
):
    two_started_together(STARTING_RUN, "run_weekly", "--week", WEEK)

    assert set(side_database.ledger().values()) == {("sent", "", "")}
    assert side_database.value("SELECT COUNT(*) FROM weekly_reports_delivery") == 12


@postgresql_only
def test_two_senders_started_together_send_each_message_once(
    queued_week, two_started_together, smtp_server
):
    two_started_together(STARTING_SENDER, "send_queued_mail")

    assert Counter(smtp_server.recipients()) == EVERY_ADDRESS


@postgresql_only
def test_two_senders_started_together_count_twelve_sent_between_them(
    queued_week, two_started_together
):
    senders = two_started_together(STARTING_SENDER, "send_queued_mail")

    counts = [sender.last_line() for sender in senders]
    sent = [int(line.split(": ")[1].split(" sent")[0]) for line in counts]
    assert sum(sent) == 12, counts
    assert all(line.endswith(" sent, 0 failed, 0 requeued.") for line in counts)


def test_second_sender_on_the_same_host_leaves_at_once(
    queued_week, subprocess_env, background, pause_at, smtp_server
):
    holding_lock = pause_at(STARTING_SENDER)
    first = background(subprocess_env(**holding_lock.env()), "send_queued_mail")
    holding_lock.wait_for(first)

    second = background(subprocess_env(), "send_queued_mail")
    second.wait(60)
    holding_lock.release()
    first.wait(60)

    assert second.last_line() == "Another sender holds the lock; nothing to do."
    assert first.last_line() == "Queued mail: 12 sent, 0 failed, 0 requeued."
    assert Counter(smtp_server.recipients()) == EVERY_ADDRESS


def test_run_delivering_in_two_processes_sends_each_report_once(
    subprocess_env, background, smtp_server
):
    run = background(
        subprocess_env(WEEKLY_REPORTS_DELIVERY_PROCESSES=2),
        "run_weekly",
        "--week",
        WEEK,
    )
    run.wait(60)

    assert run.popen.returncode == 0, run.stderr
    assert run.last_line() == (
        f"Weekly reports for {WEEK}: 12 sent, 0 skipped, 0 failed, 0 already sent"
    )
    assert Counter(smtp_server.recipients()) == EVERY_ADDRESS


def test_run_computing_in_two_processes_sends_each_report_once(
    subprocess_env, background, smtp_server
):
    run = background(
        subprocess_env(WEEKLY_REPORTS_PROCESSES=2), "run_weekly", "--week", WEEK
    )
    run.wait(60)

    assert run.popen.returncode == 0, run.stderr
    assert Counter(smtp_server.recipients()) == EVERY_ADDRESS
