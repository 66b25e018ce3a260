"""The rules of "What a report says" in DESIGN.md, one test per rule.

Figures are read either from ``compute_figures`` directly or from the JSON
lines of ``run_weekly --dry-run --json``.
"""

import datetime
import json
import logging

import pytest
from django.core.management import CommandError
from django.utils import timezone
from post_office.models import Email

from tests.factories import DomainFactory, IssueFactory, OrganizationFactory
from weekly_reports.models import Delivery, Subscription
from weekly_reports.rendering import ReportTemplate, context_for
from weekly_reports.reports import Report
from weekly_reports.stats import Figures, clean_description, compute_figures
from weekly_reports.weeks import IsoWeek

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
WEEK = IsoWeek(2026, 48)
# Monday 2026-11-23 00:00 to Monday 2026-11-30 00:00, in UTC (the default).
WEEK_START = datetime.datetime(2026, 11, 23, tzinfo=UTC)
WEEK_END = datetime.datetime(2026, 11, 30, tzinfo=UTC)
IN_WEEK = WEEK_START + datetime.timedelta(days=2)
BEFORE_WEEK = WEEK_START - datetime.timedelta(days=10)
AFTER_WEEK = WEEK_END + datetime.timedelta(days=2)
MICROSECOND = datetime.timedelta(microseconds=1)

FAMILY = "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
FLAG = "\U0001f1f3\U0001f1f1"
E_ACUTE = "e\u0301"

JSON_KEYS = [
    "domain",
    "organization",
    "email",
    "week",
    "status",
    "reason",
    "open",
    "closed",
    "total",
    "opened_this_week",
    "closed_this_week",
    "recent",
]


@pytest.fixture
def domain(site):
    return DomainFactory(
        name="acme.example",
        email="team@acme.example",
        organization__name="Acme & Sons",
    )


@pytest.fixture
def figures(domain):
    """The figures of ``domain`` for WEEK, computed when called."""

    def compute(week=WEEK):
        return compute_figures([domain.pk], week)[domain.pk]

    return compute


@pytest.fixture
def dry_run(site, run_weekly):
    """Run ``run_weekly --dry-run --json`` for WEEK; return the parsed lines."""

    def run(*args):
        result = run_weekly("--week", str(WEEK), "--dry-run", "--json", *args)
        assert result.exit_status == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    return run


@pytest.fixture
def dry_run_of_week(run_weekly):
    def run(week):
        result = run_weekly("--week", week, "--dry-run", "--json")
        return [json.loads(line) for line in result.stdout.splitlines()]

    return run


@pytest.fixture
def report_of(dry_run):
    """The dry run's JSON object of one domain."""

    def find(name, *args):
        (report,) = [line for line in dry_run(*args) if line["domain"] == name]
        return report

    return find


@pytest.fixture
def unsubscribe():
    def turn_off(domain):
        return Subscription.objects.create(domain=domain, is_subscribed=False)

    return turn_off


@pytest.fixture
def runner_log(caplog):
    """Capture the app's log records; the project's LOGGING stops them from
    propagating to the root logger, where caplog listens."""
    logger = logging.getLogger("weekly_reports")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="weekly_reports")
    yield caplog
    logger.removeHandler(caplog.handler)


def nothing_written():
    return not Delivery.objects.exists() and not Email.objects.exists()


# Week bounds


def test_week_starts_on_monday_at_midnight():
    assert (WEEK.start, WEEK.end) == (WEEK_START, WEEK_END)


def test_issue_created_at_monday_midnight_is_opened_that_week(domain, figures):
    IssueFactory(domain=domain, created=WEEK_START)

    assert figures().opened_this_week == 1


def test_issue_created_just_before_monday_midnight_belongs_to_the_week_before(
    domain, figures
):
    IssueFactory(domain=domain, created=WEEK_START - MICROSECOND)

    assert (figures().total, figures().opened_this_week) == (1, 0)


def test_issue_created_in_the_last_microsecond_of_the_week_is_opened_that_week(
    domain, figures
):
    IssueFactory(domain=domain, created=WEEK_END - MICROSECOND)

    assert figures().opened_this_week == 1


def test_issue_created_at_the_next_monday_midnight_is_not_counted(domain, figures):
    IssueFactory(domain=domain, created=WEEK_END)

    assert (figures().total, figures().opened_this_week) == (0, 0)


def test_week_follows_time_zone_so_monday_2am_utc_is_the_week_before_in_new_york(
    settings, domain, figures
):
    settings.TIME_ZONE = "America/New_York"
    # Monday 02:00 UTC is Sunday 21:00 in New York.
    IssueFactory(domain=domain, created=datetime.datetime(2026, 11, 30, 2, tzinfo=UTC))

    assert figures(IsoWeek(2026, 48)).opened_this_week == 1
    assert figures(IsoWeek(2026, 49)).opened_this_week == 0


def test_week_in_new_york_starts_at_monday_midnight_local_time(settings):
    settings.TIME_ZONE = "America/New_York"

    assert WEEK.start == datetime.datetime(2026, 11, 23, 5, tzinfo=UTC)


def test_last_complete_week_at_monday_midnight_is_the_week_just_ended():
    now = datetime.datetime(2026, 11, 30, tzinfo=UTC)

    assert IsoWeek.last_complete(now) == IsoWeek(2026, 48)


def test_last_complete_week_on_sunday_night_is_the_week_before():
    now = datetime.datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC)

    assert IsoWeek.last_complete(now) == IsoWeek(2026, 47)


def test_last_complete_week_is_read_in_time_zone(settings):
    settings.TIME_ZONE = "America/New_York"
    # Still Sunday evening in New York.
    now = datetime.datetime(2026, 11, 30, 2, tzinfo=UTC)

    assert IsoWeek.last_complete(now) == IsoWeek(2026, 47)


def test_week_spanning_the_end_of_daylight_saving_time_ends_at_local_midnight(
    settings,
):
    settings.TIME_ZONE = "America/New_York"

    assert IsoWeek(2026, 44).end == datetime.datetime(2026, 11, 2, 5, tzinfo=UTC)


def test_run_without_week_reports_the_last_complete_week(domain, run_weekly):
    today = timezone.localdate()
    last_monday = today - datetime.timedelta(days=today.weekday() + 7)
    year, week, _ = last_monday.isocalendar()

    result = run_weekly("--dry-run", "--json")

    assert json.loads(result.stdout)["week"] == f"{year}-W{week:02d}"


# Counted issues


def test_hidden_issues_are_not_counted(domain, figures):
    IssueFactory(domain=domain, created=IN_WEEK, is_hidden=True)

    assert figures().total == 0


def test_spam_issues_are_not_counted(domain, figures):
    IssueFactory(domain=domain, created=IN_WEEK, status="spam")

    assert figures().total == 0


def test_issues_of_other_domains_are_not_counted(domain, figures):
    IssueFactory(domain=DomainFactory(name="other.example"), created=IN_WEEK)

    assert figures().total == 0


@pytest.mark.parametrize("status", ["open", None, "", "in_review"])
def test_every_status_but_closed_and_spam_counts_as_open(domain, figures, status):
    IssueFactory(domain=domain, created=BEFORE_WEEK, status=status)

    assert (figures().open, figures().closed) == (1, 0)


def test_closed_status_counts_as_closed(domain, figures):
    IssueFactory(domain=domain, created=BEFORE_WEEK, status="closed")

    assert (figures().open, figures().closed) == (0, 1)


def test_status_is_read_as_stored_now_even_if_closed_after_the_week(domain, figures):
    IssueFactory(
        domain=domain, created=BEFORE_WEEK, status="closed", closed_date=AFTER_WEEK
    )

    assert (figures().open, figures().closed) == (0, 1)


def test_total_is_open_plus_closed(domain, dry_run):
    IssueFactory.create_batch(2, domain=domain, created=BEFORE_WEEK, status="open")
    IssueFactory(domain=domain, created=BEFORE_WEEK, status="closed")
    IssueFactory(domain=domain, created=BEFORE_WEEK, status="spam")

    (report,) = dry_run()

    assert (report["open"], report["closed"], report["total"]) == (2, 1, 3)


def test_domain_without_issues_has_zero_figures(domain, figures):
    assert figures().as_dict() == {
        "open": 0,
        "closed": 0,
        "total": 0,
        "opened_this_week": 0,
        "closed_this_week": 0,
        "recent": [],
    }


# Opened and closed this week


def test_opened_this_week_counts_issues_created_inside_the_week(domain, figures):
    IssueFactory.create_batch(2, domain=domain, created=IN_WEEK)
    IssueFactory(domain=domain, created=BEFORE_WEEK)

    assert figures().opened_this_week == 2


def test_opened_this_week_leaves_out_hidden_and_spam_issues(domain, figures):
    IssueFactory(domain=domain, created=IN_WEEK, is_hidden=True)
    IssueFactory(domain=domain, created=IN_WEEK, status="spam")

    assert figures().opened_this_week == 0


def test_closed_this_week_counts_closed_issues_closed_inside_the_week(domain, figures):
    IssueFactory(
        domain=domain, created=BEFORE_WEEK, status="closed", closed_date=IN_WEEK
    )

    assert figures().closed_this_week == 1


def test_closed_this_week_includes_a_close_at_monday_midnight(domain, figures):
    IssueFactory(
        domain=domain, created=BEFORE_WEEK, status="closed", closed_date=WEEK_START
    )

    assert figures().closed_this_week == 1


@pytest.mark.parametrize(
    "closed_date",
    [WEEK_START - MICROSECOND, WEEK_END, AFTER_WEEK],
    ids=["before the week", "at the next monday", "after the week"],
)
def test_closed_issue_closed_outside_the_week_is_not_closed_this_week(
    domain, figures, closed_date
):
    IssueFactory(
        domain=domain, created=BEFORE_WEEK, status="closed", closed_date=closed_date
    )

    assert (figures().closed, figures().closed_this_week) == (1, 0)


def test_closed_issue_without_closed_date_is_not_closed_this_week(domain, figures):
    IssueFactory(domain=domain, created=BEFORE_WEEK, status="closed", closed_date=None)

    assert (figures().closed, figures().closed_this_week) == (1, 0)


def test_reopened_issue_with_a_closed_date_in_the_week_is_not_closed_this_week(
    domain, figures
):
    IssueFactory(domain=domain, created=BEFORE_WEEK, status="open", closed_date=IN_WEEK)

    assert figures().closed_this_week == 0


# Recent issues


def test_recent_lists_at_most_ten_issues(domain, figures):
    for hour in range(12):
        IssueFactory(domain=domain, created=IN_WEEK + datetime.timedelta(hours=hour))

    assert len(figures().recent) == 10


def test_recent_lists_the_newest_issues_first(domain, figures):
    middle = IssueFactory(domain=domain, created=IN_WEEK)
    oldest = IssueFactory(domain=domain, created=BEFORE_WEEK)
    newest = IssueFactory(domain=domain, created=IN_WEEK + datetime.timedelta(hours=1))

    assert [issue.pk for issue in figures().recent] == [
        newest.pk,
        middle.pk,
        oldest.pk,
    ]


def test_recent_drops_the_oldest_beyond_ten(domain, figures):
    oldest = IssueFactory(domain=domain, created=BEFORE_WEEK)
    IssueFactory.create_batch(10, domain=domain, created=IN_WEEK)

    assert oldest.pk not in [issue.pk for issue in figures().recent]


def test_recent_breaks_ties_on_created_by_the_higher_pk_first(domain, figures):
    issues = IssueFactory.create_batch(3, domain=domain, created=IN_WEEK)

    assert [issue.pk for issue in figures().recent] == sorted(
        (issue.pk for issue in issues), reverse=True
    )


def test_recent_never_lists_hidden_or_spam_issues(domain, figures):
    shown = IssueFactory(domain=domain, created=BEFORE_WEEK)
    IssueFactory(domain=domain, created=IN_WEEK, is_hidden=True)
    IssueFactory(domain=domain, created=IN_WEEK, status="spam")

    assert [issue.pk for issue in figures().recent] == [shown.pk]


def test_recent_never_lists_issues_created_after_the_week(domain, figures):
    IssueFactory(domain=domain, created=WEEK_END)

    assert figures().recent == []


def test_recent_lists_the_ten_newest_of_each_domain_in_one_computation(domain):
    other = DomainFactory(name="other.example")
    issues = {
        owner.pk: IssueFactory.create_batch(11, domain=owner, created=IN_WEEK)
        for owner in (domain, other)
    }

    figures = compute_figures([domain.pk, other.pk], WEEK)

    assert {pk: [issue.pk for issue in figures[pk].recent] for pk in issues} == {
        pk: sorted((issue.pk for issue in owned), reverse=True)[:10]
        for pk, owned in issues.items()
    }


def test_recent_issue_with_null_views_shows_zero(domain, figures):
    IssueFactory(domain=domain, created=IN_WEEK, views=None)

    assert figures().recent[0].views == 0


def test_recent_issue_shows_its_view_count(domain, figures):
    IssueFactory(domain=domain, created=IN_WEEK, views=42)

    assert figures().recent[0].views == 42


def test_recent_issue_shows_its_label_name(domain, figures):
    IssueFactory(domain=domain, created=IN_WEEK, label=4)

    assert figures().recent[0].label == "Security"


def test_recent_issue_links_to_its_page_under_site_url(domain, figures):
    issue = IssueFactory(domain=domain, created=IN_WEEK)

    assert figures().recent[0].url == f"https://blt.example/issue/{issue.pk}/"


def test_recent_issue_link_follows_the_issue_path_setting(settings, domain, figures):
    settings.WEEKLY_REPORTS = {"ISSUE_PATH": "/bugs/{pk}"}
    issue = IssueFactory(domain=domain, created=IN_WEEK)

    assert figures().recent[0].url == f"https://blt.example/bugs/{issue.pk}"


def test_recent_issue_in_json_has_exactly_these_keys(domain, dry_run):
    issue = IssueFactory(
        domain=domain, created=IN_WEEK, description="XSS", views=3, label=4
    )

    (report,) = dry_run()

    assert report["recent"] == [
        {
            "description": "XSS",
            "views": 3,
            "label": "Security",
            "url": f"https://blt.example/issue/{issue.pk}/",
        }
    ]


# Descriptions


def test_description_loses_control_characters():
    assert clean_description("bad\x00\x07\x1b\x7f\x9bbytes", 100) == (
        "badbytes",
        False,
    )


def test_description_collapses_whitespace_runs_including_newlines_and_tabs():
    assert clean_description("one \n\n\t two\r\nthree\u00a0 four", 100) == (
        "one two three four",
        False,
    )


def test_description_has_its_ends_stripped():
    assert clean_description("\n\t  text \r\n", 100) == ("text", False)


def test_description_of_exactly_100_graphemes_is_not_cut():
    assert clean_description("x" * 100, 100) == ("x" * 100, False)


def test_description_longer_than_100_graphemes_is_cut_with_an_ellipsis():
    assert clean_description("x" * 101, 100) == ("x" * 100 + "…", True)


def test_description_cut_keeps_an_emoji_zwj_sequence_whole():
    text = "a" * 99 + FAMILY + "b"

    assert clean_description(text, 100) == ("a" * 99 + FAMILY + "…", True)


def test_description_cut_leaves_out_an_emoji_zwj_sequence_whole():
    text = "a" * 100 + FAMILY

    assert clean_description(text, 100) == ("a" * 100 + "…", True)


def test_description_cut_keeps_a_flag_whole():
    text = "a" * 99 + FLAG + "b"

    assert clean_description(text, 100) == ("a" * 99 + FLAG + "…", True)


def test_description_cut_keeps_a_combining_accent_with_its_letter():
    text = "a" * 99 + E_ACUTE + "b"

    assert clean_description(text, 100) == ("a" * 99 + E_ACUTE + "…", True)


def test_description_counts_a_grapheme_of_several_code_points_as_one():
    text = FAMILY * 100

    assert clean_description(text, 100) == (FAMILY * 100, False)


def test_recent_description_is_cleaned(domain, figures):
    IssueFactory(
        domain=domain, created=IN_WEEK, description="  multi\n\nline\x07 text\x1b \t"
    )

    assert figures().recent[0].description == "multi line text"


def test_recent_description_is_cut_to_100_graphemes(domain, figures):
    IssueFactory(domain=domain, created=IN_WEEK, description="a" * 99 + FAMILY * 5)

    assert figures().recent[0].description == "a" * 99 + FAMILY + "…"


def test_recent_description_is_cut_right_after_thousands_of_leading_spaces(
    domain, figures
):
    IssueFactory(domain=domain, created=IN_WEEK, description=" \n\t" * 3000 + "y" * 150)

    assert figures().recent[0].description == "y" * 100 + "…"


def test_recent_description_after_thousands_of_leading_spaces_is_not_lost(
    domain, figures
):
    IssueFactory(domain=domain, created=IN_WEEK, description=" " * 9000 + "short")

    assert figures().recent[0].description == "short"


def test_recent_description_keeps_a_letter_with_thousands_of_accents_whole(
    domain, figures
):
    stacked = "e" + "\u0301" * 2000
    IssueFactory(domain=domain, created=IN_WEEK, description="a" * 99 + stacked + "b")

    assert figures().recent[0].description == "a" * 99 + stacked + "…"


def test_recent_description_of_a_megabyte_is_cut(domain, figures):
    IssueFactory(domain=domain, created=IN_WEEK, description="z" * 1_000_000)

    assert figures().recent[0].description == "z" * 100 + "…"


# Organization


def test_organization_is_the_name_of_the_domains_organization(site, report_of):
    DomainFactory(
        name="acme.example", organization=OrganizationFactory(name="Acme & Sons")
    )

    assert report_of("acme.example")["organization"] == "Acme & Sons"


def test_organization_falls_back_to_the_domain_name(site, report_of):
    DomainFactory(name="acme.example", organization=None)

    assert report_of("acme.example")["organization"] == "acme.example"


# JSON output


def test_json_line_has_exactly_the_documented_keys_in_order(domain, dry_run):
    (report,) = dry_run()

    assert list(report) == JSON_KEYS


def test_json_line_of_a_domain_to_send_to(domain, dry_run):
    IssueFactory(domain=domain, created=IN_WEEK)

    (report,) = dry_run()

    assert {key: value for key, value in report.items() if key != "recent"} == {
        "domain": "acme.example",
        "organization": "Acme & Sons",
        "email": "team@acme.example",
        "week": "2026-W48",
        "status": "would_send",
        "reason": None,
        "open": 1,
        "closed": 0,
        "total": 1,
        "opened_this_week": 1,
        "closed_this_week": 0,
    }


def test_json_lines_are_ordered_by_domain_name(site, dry_run):
    for name in ["charlie.example", "alpha.example", "bravo.example"]:
        DomainFactory(name=name)

    assert [report["domain"] for report in dry_run()] == [
        "alpha.example",
        "bravo.example",
        "charlie.example",
    ]


def test_json_lines_stay_in_name_order_across_batches(settings, site, dry_run):
    settings.WEEKLY_REPORTS = {"BATCH_SIZE": 2}
    for name in ["e.example", "c.example", "a.example", "d.example", "b.example"]:
        DomainFactory(name=name)

    assert [report["domain"] for report in dry_run()] == [
        "a.example",
        "b.example",
        "c.example",
        "d.example",
        "e.example",
    ]


def test_json_email_is_stripped(site, report_of):
    DomainFactory(name="acme.example", email="  Team@Acme.example \n")

    assert report_of("acme.example")["email"] == "Team@Acme.example"


def test_json_summary_line_goes_to_stderr(domain, run_weekly):
    result = run_weekly("--week", str(WEEK), "--dry-run", "--json")

    assert result.stderr.strip() == (
        "Weekly reports for 2026-W48 (dry run): 1 would send, 0 skipped, 0 already sent"
    )


def test_domain_given_twice_limits_the_run_to_those_two(site, dry_run):
    for name in ["a.example", "b.example", "c.example"]:
        DomainFactory(name=name)

    reports = dry_run("--domain", "c.example", "--domain", "a.example")

    assert [report["domain"] for report in reports] == ["a.example", "c.example"]


# Skip reasons


def test_inactive_domain_is_skipped(site, report_of):
    DomainFactory(name="acme.example", is_active=False)

    report = report_of("acme.example")

    assert (report["status"], report["reason"]) == ("skipped", "inactive")


@pytest.mark.parametrize("email", [None, "", "   \t "], ids=["null", "empty", "blank"])
def test_domain_without_email_is_skipped(site, report_of, email):
    DomainFactory(name="acme.example", email=email)

    report = report_of("acme.example")

    assert (report["status"], report["reason"]) == ("skipped", "no_email")


@pytest.mark.parametrize(
    "email",
    ["not-an-address", "team@", "jösé@example.com"],
    ids=["no at sign", "no domain", "non-ascii local part"],
)
def test_domain_with_an_invalid_email_is_skipped(site, report_of, email):
    DomainFactory(name="acme.example", email=email)

    report = report_of("acme.example")

    assert (report["status"], report["reason"]) == ("skipped", "invalid_email")


def test_domain_with_an_idn_email_domain_is_sent_to(site, report_of):
    DomainFactory(name="acme.example", email="team@bücher.example")

    report = report_of("acme.example")

    assert (report["status"], report["reason"]) == ("would_send", None)


def test_unsubscribed_domain_is_skipped(domain, report_of, unsubscribe):
    unsubscribe(domain)

    report = report_of("acme.example")

    assert (report["status"], report["reason"]) == ("skipped", "unsubscribed")


def test_domain_already_queued_for_the_week_is_skipped(domain, report_of, run_weekly):
    run_weekly("--week", str(WEEK), "--queue-only")

    report = report_of("acme.example")

    assert (report["status"], report["reason"]) == ("skipped", "already_sent")


def test_inactive_domain_without_email_is_skipped_as_inactive(site, report_of):
    DomainFactory(name="acme.example", is_active=False, email=None)

    assert report_of("acme.example")["reason"] == "inactive"


def test_inactive_domain_with_an_invalid_email_is_skipped_as_inactive(site, report_of):
    DomainFactory(name="acme.example", is_active=False, email="not-an-address")

    assert report_of("acme.example")["reason"] == "inactive"


def test_unsubscribed_domain_without_email_is_skipped_as_no_email(
    site, report_of, unsubscribe
):
    unsubscribe(DomainFactory(name="acme.example", email=None))

    assert report_of("acme.example")["reason"] == "no_email"


def test_unsubscribed_domain_with_an_invalid_email_is_skipped_as_invalid_email(
    site, report_of, unsubscribe
):
    unsubscribe(DomainFactory(name="acme.example", email="not-an-address"))

    assert report_of("acme.example")["reason"] == "invalid_email"


def test_domain_unsubscribed_after_it_was_sent_is_skipped_as_unsubscribed(
    domain, report_of, run_weekly, unsubscribe
):
    run_weekly("--week", str(WEEK), "--queue-only")
    unsubscribe(domain)

    assert report_of("acme.example")["reason"] == "unsubscribed"


def test_run_records_a_skipped_domain_in_the_ledger_with_its_reason(site, run_weekly):
    DomainFactory(name="acme.example", email=None)

    run_weekly("--week", str(WEEK), "--queue-only")

    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.reason) == ("skipped", "no_email")


def test_run_reports_a_domain_already_queued_as_skipped_already_sent(
    domain, run_weekly
):
    run_weekly("--week", str(WEEK), "--queue-only")

    result = run_weekly("--week", str(WEEK), "--queue-only", "--json")

    report = json.loads(result.stdout)
    assert (report["status"], report["reason"]) == ("skipped", "already_sent")


def test_skipped_domain_still_carries_its_figures(site, report_of):
    inactive = DomainFactory(name="acme.example", is_active=False)
    issue = IssueFactory(domain=inactive, created=IN_WEEK, status="open")
    IssueFactory(
        domain=inactive, created=BEFORE_WEEK, status="closed", closed_date=IN_WEEK
    )

    report = report_of("acme.example")

    assert (
        report["open"],
        report["closed"],
        report["total"],
        report["opened_this_week"],
        report["closed_this_week"],
    ) == (1, 1, 2, 1, 1)
    assert report["recent"][0]["url"] == f"https://blt.example/issue/{issue.pk}/"


# Bad arguments


@pytest.mark.parametrize(
    ("week", "message"),
    [
        ("2026-W60", "--week '2026-W60' is not a week of 2026."),
        ("foo", "--week must look like 2026-W48, not 'foo'."),
    ],
)
def test_bad_week_exits_2_naming_it_and_writes_nothing(
    domain, run_weekly, week, message
):
    with pytest.raises(CommandError) as error:
        run_weekly("--week", week)

    assert (error.value.returncode, str(error.value)) == (2, message)
    assert nothing_written()


def test_week_whose_end_is_past_the_last_representable_date_exits_2(domain, run_weekly):
    with pytest.raises(CommandError) as error:
        run_weekly("--week", "9999-W52", "--dry-run")

    assert error.value.returncode == 2
    assert "9999-W52" in str(error.value)


def test_week_is_printed_with_a_four_digit_year(domain, dry_run_of_week):
    (report,) = dry_run_of_week("0999-W10")

    assert report["week"] == "0999-W10"


def test_unknown_domain_exits_2_naming_it_and_writes_nothing(domain, run_weekly):
    with pytest.raises(CommandError) as error:
        run_weekly(
            "--week", str(WEEK), "--domain", "acme.example", "--domain", "nope.example"
        )

    assert (error.value.returncode, str(error.value)) == (
        2,
        "--domain names no known domain: 'nope.example'.",
    )
    assert nothing_written()


# Missed weeks and the ledger


@pytest.mark.parametrize(
    ("last_sent", "warning"),
    [
        (
            "2026-W45",
            "No weekly report was ever sent for 2026-W46, 2026-W47; run "
            "'run_weekly --week WEEK' for each.",
        ),
        (
            "2026-W40",
            "No weekly report was ever sent for 2026-W41, 2026-W42, 2026-W43, "
            "2026-W44, 2026-W45 and 2 more weeks; run 'run_weekly --week WEEK' "
            "for each.",
        ),
    ],
    ids=["each week named", "five named and the rest counted"],
)
def test_run_warns_about_the_weeks_that_were_never_sent(
    domain, run_weekly, runner_log, last_sent, warning
):
    run_weekly("--week", last_sent, "--queue-only")
    runner_log.clear()

    run_weekly("--week", str(WEEK), "--dry-run")

    warnings = [
        record.getMessage()
        for record in runner_log.records
        if record.levelno == logging.WARNING
    ]
    assert warnings == [warning]


def test_run_after_the_previous_week_warns_about_nothing(
    domain, run_weekly, runner_log
):
    run_weekly("--week", "2026-W47", "--queue-only")
    runner_log.clear()

    run_weekly("--week", str(WEEK), "--queue-only")

    assert [r for r in runner_log.records if r.levelno >= logging.WARNING] == []


def test_ledger_keeps_the_domain_name_when_the_domain_is_deleted(domain, run_weekly):
    run_weekly("--week", str(WEEK), "--queue-only")

    domain.delete()

    delivery = Delivery.objects.get()
    assert (delivery.domain, delivery.domain_name) == (None, "acme.example")


# Numbers


@pytest.mark.parametrize(
    ("thousand_separator", "shown"), [(False, "12345 open"), (True, "12,345 open")]
)
def test_figures_show_thousand_separators_only_when_the_site_asks(
    settings, thousand_separator, shown
):
    settings.USE_THOUSAND_SEPARATOR = thousand_separator
    report = Report.sample(WEEK)
    report.figures = Figures(open=12345, closed=1)
    template = ReportTemplate.load()

    _, _, html = template.render(context_for(report))

    assert shown in html
