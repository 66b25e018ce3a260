"""run_weekly and send_queued_mail against a mail server that misbehaves.

The server is a real aiosmtpd on loopback (tests/smtp.py): down when the run
starts, refusing a recipient for good (5xx), answering 4xx for a while,
hanging up in the middle of a batch, or too slow to answer. Whatever it
does, the run ends within its time-outs, its exit status says whether a
report failed or waits for a retry, the ledger holds each report's state and
error, post_office retries temporary failures on the schedule of its
settings, and once the server has recovered every report has arrived once.
"""

import datetime
import time
from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from post_office.models import STATUS, Email

from tests.factories import DomainFactory
from weekly_reports.models import Delivery
from weekly_reports.weeks import IsoWeek

pytestmark = pytest.mark.django_db

WEEK = IsoWeek(2026, 48)
RETRY_INTERVAL = datetime.timedelta(minutes=15)
ADDRESSES = [f"security@app{n}.example" for n in range(1, 5)]
TIMEOUT = 1


@pytest.fixture
def retries(settings):
    """post_office retries a temporary failure twice, 15 minutes apart."""
    settings.POST_OFFICE = {
        **settings.POST_OFFICE,
        "MAX_RETRIES": 2,
        "RETRY_INTERVAL": RETRY_INTERVAL,
    }


@pytest.fixture
def domains(site, retries):
    """Four domains, app1.example to app4.example, one address each."""
    return [
        DomainFactory(name=f"app{n}.example", email=address)
        for n, address in enumerate(ADDRESSES, start=1)
    ]


@pytest.fixture
def run(run_weekly):
    """Run the week; return the result and the seconds it took."""

    def timed():
        started = time.monotonic()
        result = run_weekly("--week", str(WEEK))
        return result, time.monotonic() - started

    return timed


@pytest.fixture
def send_queued_mail():
    """Run the cron job that delivers retries; return its last line."""

    def send():
        stdout = StringIO()
        call_command("send_queued_mail", stdout=stdout)
        return stdout.getvalue().strip().splitlines()[-1]

    return send


def let_retry_interval_pass():
    """Move every waiting retry's time into the past, as the clock would."""
    for email in Email.objects.filter(status=STATUS.requeued):
        email.scheduled_time -= RETRY_INTERVAL
        email.save(update_fields=["scheduled_time"])


def ledger():
    return {
        row.domain_name: (row.status, row.error)
        for row in Delivery.objects.order_by("domain_name")
    }


def deferred_line(count):
    return (
        f"Weekly reports for {WEEK}: 0 sent, 0 skipped, 0 failed, 0 already sent, "
        f"{count} deferred"
    )


# The server is down when the run starts.


def test_run_with_the_server_down_defers_every_report_and_exits_1(
    domains, stopped_smtp_server, run
):
    result, _ = run()

    assert result.exit_status == 1
    assert result.last_line == deferred_line(4)


def test_run_with_the_server_down_records_the_refused_connection(
    domains, stopped_smtp_server, run
):
    run()

    assert ledger() == {
        domain.name: (
            "queued",
            "ConnectionRefusedError: [Errno 111] Connection refused",
        )
        for domain in domains
    }


def test_run_with_the_server_down_schedules_each_retry_one_interval_later(
    domains, stopped_smtp_server, run
):
    before = timezone.now()
    run()
    after = timezone.now()

    for email in Email.objects.all():
        assert email.status == STATUS.requeued
        assert email.number_of_retries == 1
        assert before + RETRY_INTERVAL <= email.scheduled_time <= after + RETRY_INTERVAL


def test_retries_are_not_sent_before_the_interval_has_passed(
    domains, stopped_smtp_server, run, send_queued_mail
):
    run()
    stopped_smtp_server.start()

    line = send_queued_mail()

    assert line == "Queued mail: 0 sent, 0 failed, 0 requeued."
    assert stopped_smtp_server.received == []


def test_reports_deferred_while_the_server_was_down_arrive_once_when_it_is_up(
    domains, stopped_smtp_server, run, send_queued_mail
):
    run()
    stopped_smtp_server.start()
    let_retry_interval_pass()

    line = send_queued_mail()

    assert line == "Queued mail: 4 sent, 0 failed, 0 requeued."
    assert Counter(stopped_smtp_server.recipients()) == Counter(ADDRESSES)


def test_ledger_shows_sent_once_the_retry_sender_delivered(
    domains, stopped_smtp_server, run, send_queued_mail
):
    run()
    stopped_smtp_server.start()
    let_retry_interval_pass()

    send_queued_mail()

    assert ledger() == {domain.name: ("sent", "") for domain in domains}


def test_rerun_after_the_retries_went_out_sends_nothing(
    domains, stopped_smtp_server, run, send_queued_mail
):
    run()
    stopped_smtp_server.start()
    let_retry_interval_pass()
    send_queued_mail()

    rerun, _ = run()

    assert rerun.exit_status == 0
    assert rerun.last_line == (
        f"Weekly reports for {WEEK}: 0 sent, 0 skipped, 0 failed, 4 already sent"
    )
    assert len(stopped_smtp_server.received) == 4


def test_rerun_while_the_retries_wait_sends_nothing_twice(
    domains, stopped_smtp_server, run
):
    run()
    stopped_smtp_server.start()

    rerun, _ = run()

    assert rerun.last_line == (
        f"Weekly reports for {WEEK}: 0 sent, 0 skipped, 0 failed, 4 already sent"
    )
    assert stopped_smtp_server.received == []


# One recipient is refused for good (5xx).


@pytest.fixture
def one_refused(domains, smtp_server):
    smtp_server.refuse(ADDRESSES[1], "550 5.1.1 No such mailbox")
    return smtp_server


def test_permanent_refusal_fails_that_report_and_exits_1(one_refused, run):
    result, _ = run()

    assert result.exit_status == 1
    assert result.last_line == (
        f"Weekly reports for {WEEK}: 3 sent, 0 skipped, 1 failed, 0 already sent"
    )


def test_permanent_refusal_is_recorded_with_the_servers_answer(one_refused, run):
    run()

    assert ledger() == {
        "app1.example": ("sent", ""),
        "app2.example": (
            "failed",
            "Recipient refused: security@app2.example: 550 5.1.1 No such mailbox",
        ),
        "app3.example": ("sent", ""),
        "app4.example": ("sent", ""),
    }


def test_permanent_refusal_is_never_retried_by_the_retry_sender(
    one_refused, run, send_queued_mail
):
    run()
    let_retry_interval_pass()

    line = send_queued_mail()

    assert line == "Queued mail: 0 sent, 0 failed, 0 requeued."
    failed = Email.objects.get(to=[ADDRESSES[1]])
    assert (failed.status, failed.number_of_retries) == (STATUS.failed, None)


# The server answers 4xx for a while, then recovers.


@pytest.fixture
def busy_for(domains, smtp_server):
    """Make the server answer 451 to app2's address ``times`` times."""

    def defer(times):
        smtp_server.defer(ADDRESSES[1], times)
        return smtp_server

    return defer


def test_temporary_refusal_defers_that_report_only(busy_for, run):
    busy_for(1)

    result, _ = run()

    assert result.exit_status == 1
    assert result.last_line == (
        f"Weekly reports for {WEEK}: 3 sent, 0 skipped, 0 failed, 0 already sent, "
        "1 deferred"
    )


def test_temporary_refusal_is_recorded_with_the_servers_answer(busy_for, run):
    busy_for(1)

    run()

    assert ledger()["app2.example"] == (
        "queued",
        "Recipient refused: security@app2.example: 451 4.3.0 Try again later",
    )


def test_each_retry_follows_the_retry_interval(busy_for, run, send_queued_mail):
    busy_for(2)
    run()
    let_retry_interval_pass()

    before = timezone.now()
    line = send_queued_mail()
    after = timezone.now()

    assert line == "Queued mail: 0 sent, 0 failed, 1 requeued."
    retry = Email.objects.get(to=[ADDRESSES[1]])
    assert retry.number_of_retries == 2
    assert before + RETRY_INTERVAL <= retry.scheduled_time <= after + RETRY_INTERVAL


def test_report_deferred_twice_arrives_once_when_the_server_recovers(
    busy_for, run, send_queued_mail
):
    server = busy_for(2)
    run()
    for _ in range(2):
        let_retry_interval_pass()
        send_queued_mail()

    assert Counter(server.recipients()) == Counter(ADDRESSES)
    assert ledger()["app2.example"] == ("sent", "")


def test_report_refused_beyond_max_retries_is_recorded_failed(
    busy_for, run, send_queued_mail
):
    busy_for(3)
    run()
    for _ in range(2):
        let_retry_interval_pass()
        send_queued_mail()

    retry = Email.objects.get(to=[ADDRESSES[1]])
    assert (retry.status, retry.number_of_retries) == (STATUS.failed, 2)
    assert ledger()["app2.example"] == (
        "failed",
        "Recipient refused: security@app2.example: 451 4.3.0 Try again later",
    )


def test_without_retries_a_temporary_refusal_fails_at_once(busy_for, settings, run):
    busy_for(1)
    settings.POST_OFFICE = {**settings.POST_OFFICE, "MAX_RETRIES": 0}

    result, _ = run()

    assert result.last_line == (
        f"Weekly reports for {WEEK}: 3 sent, 0 skipped, 1 failed, 0 already sent"
    )


# The server hangs up in the middle of a batch.


@pytest.fixture
def hangs_up_at_the_second_message(domains, smtp_server):
    smtp_server.hang_up_at(2)
    return smtp_server


def test_hang_up_defers_only_the_message_on_the_wire(
    hangs_up_at_the_second_message, run
):
    result, _ = run()

    assert result.exit_status == 1
    assert result.last_line == (
        f"Weekly reports for {WEEK}: 3 sent, 0 skipped, 0 failed, 0 already sent, "
        "1 deferred"
    )
    assert hangs_up_at_the_second_message.recipients() == [
        ADDRESSES[0],
        ADDRESSES[2],
        ADDRESSES[3],
    ]


def test_hang_up_is_recorded_as_a_lost_connection(hangs_up_at_the_second_message, run):
    run()

    status, error = ledger()["app2.example"]
    assert status == "queued"
    assert error.startswith("SMTPServerDisconnected: Connection unexpectedly closed")


def test_message_lost_in_a_hang_up_arrives_once_on_retry(
    hangs_up_at_the_second_message, run, send_queued_mail
):
    run()
    let_retry_interval_pass()

    line = send_queued_mail()

    assert line == "Queued mail: 1 sent, 0 failed, 0 requeued."
    assert Counter(hangs_up_at_the_second_message.recipients()) == Counter(ADDRESSES)


# The server is too slow to answer.


@pytest.fixture
def slow_server(domains, smtp_server, settings):
    """The server holds back its answer to MAIL FROM, for longer than the
    client's time-out, until the test releases it."""
    settings.EMAIL_TIMEOUT = TIMEOUT
    stall = smtp_server.stall("MAIL")
    yield smtp_server
    stall.release()


def test_run_against_a_silent_server_ends_within_one_timeout_per_message(
    slow_server, run
):
    result, seconds = run()

    assert result.exit_status == 1
    assert result.last_line == deferred_line(4)
    # Each message waits for its time-out once; the rest is bookkeeping.
    assert seconds < len(ADDRESSES) * TIMEOUT + 5


def test_time_out_is_recorded_in_the_ledger(slow_server, run):
    run()

    assert set(ledger().values()) == {
        ("queued", "SMTPServerDisconnected: Connection unexpectedly closed: timed out")
    }


def test_reports_held_up_by_a_slow_server_arrive_once_when_it_answers_again(
    slow_server, run, send_queued_mail
):
    run()
    slow_server.recover()
    let_retry_interval_pass()

    line = send_queued_mail()

    assert line == "Queued mail: 4 sent, 0 failed, 0 requeued."
    assert Counter(slow_server.recipients()) == Counter(ADDRESSES)
