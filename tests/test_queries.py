"""How the number of queries of run_weekly grows with the number of domains.

Each test measures a run over 5 domains, forgets that run (its ledger rows
and messages), adds 45 domains and measures the same run over all 50.
"""

import datetime
import math

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from post_office.models import Email

from tests.factories import DomainFactory, IssueFactory
from weekly_reports.models import Delivery
from weekly_reports.weeks import IsoWeek

pytestmark = pytest.mark.django_db

WEEK = IsoWeek(2026, 48)
IN_WEEK = WEEK.start + datetime.timedelta(days=2)
BEFORE_WEEK = WEEK.start - datetime.timedelta(days=10)


def insert_statements(model, rows):
    """How many INSERT statements one bulk_create of ``rows`` rows takes.

    The backend caps the parameters of one statement; Django 5.2 assumes 999
    on SQLite, so it splits the 20-column post_office Email rows every 49
    rows. PostgreSQL inserts them all in one statement.
    """
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    per_statement = connection.ops.bulk_batch_size(fields, [None] * rows)
    return math.ceil(rows / per_statement)


def extra_inserts(few, many):
    """INSERT statements that queueing ``many`` messages (one per domain)
    takes beyond queueing ``few``: the backend's chunks of each bulk_create."""
    return sum(
        insert_statements(model, many) - insert_statements(model, few)
        for model in (Delivery, Email, Delivery.emails.through)
    )


@pytest.fixture
def add_domains(site):
    """Add domains up to ``total``, each with an open issue, one closed in
    the week and one opened in the week."""
    made = []

    def add(total):
        for number in range(len(made), total):
            domain = DomainFactory(
                name=f"domain{number:03d}.example",
                email=f"team@domain{number:03d}.example",
            )
            IssueFactory(domain=domain, created=BEFORE_WEEK, status="open")
            IssueFactory(
                domain=domain, created=BEFORE_WEEK, status="closed", closed_date=IN_WEEK
            )
            IssueFactory(domain=domain, created=IN_WEEK, views=None, label=4)
            made.append(domain)

    return add


@pytest.fixture
def count_queries(run_weekly):
    """Run run_weekly for WEEK with these arguments; return how many queries
    it made, and forget the run so that the next one starts afresh."""

    def run(*args):
        with CaptureQueriesContext(connection) as queries:
            result = run_weekly("--week", str(WEEK), *args)
        assert result.exit_status == 0, result.stderr

        Delivery.objects.all().delete()
        Email.objects.all().delete()
        return len(queries)

    return run


def test_dry_run_takes_as_many_queries_for_50_domains_as_for_5(
    add_domains, count_queries
):
    add_domains(5)
    for_5 = count_queries("--dry-run")
    add_domains(50)

    assert count_queries("--dry-run") == for_5


def test_queue_only_takes_as_many_queries_for_50_domains_as_for_5(
    add_domains, count_queries
):
    """Apart from the chunks into which the database backend splits one bulk
    INSERT (none on PostgreSQL, one more on SQLite)."""
    add_domains(5)
    for_5 = count_queries("--queue-only")
    add_domains(50)

    assert count_queries("--queue-only") == for_5 + extra_inserts(5, 50)


def test_full_run_takes_three_more_queries_for_each_message_it_delivers(
    add_domains, count_queries, smtp_server
):
    """Delivery claims, sends and commits one message at a time, so that a
    crash resends at most the message on the wire. Each message thus costs
    three queries: the savepoint of its claim (a BEGIN outside the test's
    transaction), the UPDATE that claims it, and the savepoint's release (the
    COMMIT). Reading the messages, logging the outcomes and settling the
    ledger are done per batch; queueing adds only the backend's chunks of
    one bulk INSERT, as with --queue-only."""
    add_domains(5)
    for_5 = count_queries()
    add_domains(50)

    for_50 = count_queries()

    assert len(smtp_server.received) == 55
    assert for_50 - for_5 == 45 * 3 + extra_inserts(5, 50)
