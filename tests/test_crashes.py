"""run_weekly killed with SIGKILL at several points, then run again.

Each test runs ``manage.py run_weekly`` in a subprocess against a database of
its own holding twelve domains, in batches of four, and kills it at a known
point: stopped before a chosen SQL statement (tests/pausing.py) or while the
SMTP server holds back its answer. The next run must finish the week so that
every domain has exactly one report.
"""

from collections import Counter

import pytest

from tests.conftest import SEEDED_DOMAINS
from tests.subprocesses import WEEK, addresses

pytestmark = pytest.mark.slow

EVERY_ADDRESS = Counter(addresses(1, SEEDED_DOMAINS))
# The first read of the issues, for the first batch's figures: nothing is
# written yet.
COMPUTING = 'FROM "website_issue"'
# The claim of the first message: the first batch is committed to the queue.
DELIVERING = 'UPDATE "post_office_email"'


@pytest.fixture
def start(background):
    def run(env, *args):
        return background(env, "run_weekly", "--week", WEEK, *args)

    return run


@pytest.fixture
def kill_at(subprocess_env, start, pause_at):
    """Start a run, stop it before the statement ``point`` and kill it."""

    def run(point):
        paused = pause_at(point)
        process = start(subprocess_env(**paused.env()))
        paused.wait_for(process)
        process.kill()
        return process

    return run


@pytest.fixture
def finish(subprocess_env, start):
    """Run the week again, undisturbed, to its end; return the process."""

    def run():
        process = start(subprocess_env())
        process.wait(60)
        return process

    return run


def test_run_killed_while_computing_has_queued_nothing(kill_at, side_database):
    kill_at(COMPUTING)

    assert side_database.value("SELECT COUNT(*) FROM weekly_reports_delivery") == 0
    assert side_database.value("SELECT COUNT(*) FROM post_office_email") == 0


def test_run_killed_after_queueing_a_batch_leaves_it_queued_and_unsent(
    kill_at, smtp_server, side_database
):
    kill_at(DELIVERING)

    assert side_database.ledger() == {
        f"app{n:02d}.example": ("queued", "", "") for n in range(1, 5)
    }
    assert side_database.value("SELECT COUNT(*) FROM post_office_email") == 4
    assert smtp_server.received == []


@pytest.mark.parametrize("point", [COMPUTING, DELIVERING], ids=["computing", "queued"])
def test_run_after_a_kill_sends_every_report_once(
    point, kill_at, finish, smtp_server, side_database
):
    kill_at(point)

    rerun = finish()

    assert rerun.popen.returncode == 0, rerun.stderr
    assert rerun.last_line() == (
        f"Weekly reports for {WEEK}: 12 sent, 0 skipped, 0 failed, 0 already sent"
    )
    assert Counter(smtp_server.recipients()) == EVERY_ADDRESS
    assert set(side_database.ledger().values()) == {("sent", "", "")}


def test_send_queued_mail_leaves_a_killed_runs_batch_alone_during_the_hold(
    subprocess_env, kill_at, background, smtp_server
):
    kill_at(DELIVERING)

    sender = background(subprocess_env(), "send_queued_mail")
    sender.wait(60)

    assert sender.last_line() == "Queued mail: 0 sent, 0 failed, 0 requeued."
    assert smtp_server.received == []


def test_send_queued_mail_delivers_a_killed_runs_batch_once_the_hold_passed(
    subprocess_env, kill_at, background, smtp_server, side_database
):
    kill_at(DELIVERING)
    side_database.execute(
        "UPDATE post_office_email SET scheduled_time = '2026-01-01 00:00:00+00:00'"
    )

    sender = background(subprocess_env(), "send_queued_mail")
    sender.wait(60)

    assert sender.last_line() == "Queued mail: 4 sent, 0 failed, 0 requeued."
    assert sorted(smtp_server.recipients()) == addresses(1, 4)


def test_run_killed_while_the_server_holds_a_message_resends_only_that_one(
    subprocess_env, start, finish, smtp_server, side_database
):
    # The sixth message, the second of the second batch, never gets its answer.
    held = smtp_server.stall("DATA", after=5)
    process = start(subprocess_env())
    held.wait_until_holding()
    process.kill()
    held.release()

    rerun = finish()

    # The five that went out are settled as sent by the rerun, which sends
    # the one killed on the wire, the rest of its batch and the last batch.
    assert rerun.popen.returncode == 0, rerun.stderr
    assert rerun.last_line() == (
        f"Weekly reports for {WEEK}: 7 sent, 0 skipped, 0 failed, 5 already sent"
    )
    assert Counter(smtp_server.recipients()) == EVERY_ADDRESS
    assert set(side_database.ledger().values()) == {("sent", "", "")}


def test_run_killed_while_delivering_had_sent_the_messages_before(
    subprocess_env, start, smtp_server, side_database
):
    held = smtp_server.stall("DATA", after=5)
    process = start(subprocess_env())
    held.wait_until_holding()

    process.kill()

    assert smtp_server.recipients() == addresses(1, 5)
    assert (
        side_database.value("SELECT COUNT(*) FROM post_office_email WHERE status = 0")
        == 5
    )
