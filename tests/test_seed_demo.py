import datetime
import hashlib
import re
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.core.validators import validate_email
from django.db import connection
from django.db.models import Count, F

from blt.website.management.commands.seed_demo import parse_week, seed_demo_data
from blt.website.models import Domain, Issue, Organization

pytestmark = pytest.mark.django_db

WEEK_START = datetime.datetime(2026, 11, 23, tzinfo=datetime.UTC)
WEEK_END = datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC)
FIRST_WEEK_START = datetime.datetime(2026, 10, 5, tzinfo=datetime.UTC)

EMOJI = re.compile("[\U0001f000-\U0001faff]")


def seed(*arguments):
    output = StringIO()
    call_command("seed_demo", "--week", "2026-W48", *arguments, stdout=output)
    return output.getvalue()


def website_digest():
    """A digest of every organization, domain and issue, ids included."""
    digest = hashlib.sha256()
    for model in (Organization, Domain, Issue):
        for row in model.objects.order_by("pk").values_list():
            digest.update(repr(row).encode())
    return digest.hexdigest()


@pytest.fixture
def seeded():
    seed("--domains", "200", "--issues", "800", "--seed", "3")


def test_seed_creates_exactly_the_requested_domains_and_issues():
    seed("--domains", "30", "--issues", "300")

    assert Domain.objects.count() == 30
    assert Issue.objects.count() == 300


def test_summary_line_gives_the_counts_created():
    output = seed("--domains", "30", "--issues", "300", "--seed", "5")

    organizations = Organization.objects.count()
    assert re.fullmatch(
        rf"Seeded {organizations} organizations, 30 domains and 300 issues "
        r"for 2026-W48 \(seed 5\) in \d+\.\d s\.\n",
        output,
    )


def test_same_seed_with_clear_gives_identical_rows():
    seed("--domains", "50", "--issues", "400", "--seed", "11", "--clear")
    first = website_digest()

    seed("--domains", "50", "--issues", "400", "--seed", "11", "--clear")

    assert website_digest() == first


def test_different_seeds_give_different_rows():
    seed("--domains", "50", "--issues", "400", "--seed", "1", "--clear")
    first = website_digest()

    seed("--domains", "50", "--issues", "400", "--seed", "2", "--clear")

    assert website_digest() != first


def test_clear_deletes_the_existing_rows():
    seed("--domains", "20", "--issues", "100")

    seed("--domains", "10", "--issues", "50", "--clear")

    assert Domain.objects.count() == 10
    assert Issue.objects.count() == 50


def test_seeding_again_without_clear_adds_rows_beside_the_old_ones():
    seed("--domains", "20", "--issues", "100")

    seed("--domains", "20", "--issues", "100")

    assert Domain.objects.count() == 40
    assert Issue.objects.count() == 200


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="COPY is PostgreSQL's alone."
)
def test_copy_and_bulk_create_store_the_same_rows():
    arguments = {
        "domain_count": 40,
        "issue_count": 400,
        "seed": 4,
        "week_start": parse_week("2026-W48"),
        "clear": True,
    }
    seed_demo_data(**arguments, use_copy=True)
    copied = website_digest()

    seed_demo_data(**arguments, use_copy=False)

    assert website_digest() == copied


def test_issues_are_dated_in_the_chosen_week_and_the_seven_before(seeded):
    dates = Issue.objects.values_list("created", flat=True)

    assert min(dates) >= FIRST_WEEK_START
    assert max(dates) < WEEK_END


def test_about_a_fifth_of_the_issues_fall_in_the_chosen_week(seeded):
    in_week = Issue.objects.filter(created__gte=WEEK_START, created__lt=WEEK_END)

    assert 0.15 < in_week.count() / Issue.objects.count() < 0.25


def test_domains_and_organizations_predate_their_issues(seeded):
    assert not Domain.objects.filter(created__gte=FIRST_WEEK_START).exists()
    assert not Organization.objects.filter(created__gte=FIRST_WEEK_START).exists()


def test_closed_issues_are_closed_after_they_were_created(seeded):
    closed = Issue.objects.filter(status="closed")

    assert closed.exists()
    assert not closed.filter(closed_date=None).exists()
    assert not closed.filter(closed_date__lte=F("created")).exists()


def test_some_issues_were_closed_in_the_chosen_week(seeded):
    closed_in_week = Issue.objects.filter(
        status="closed", closed_date__gte=WEEK_START, closed_date__lt=WEEK_END
    )

    assert closed_in_week.exists()


@pytest.mark.parametrize(
    "model, lookup",
    [
        (Domain, {"is_active": False}),
        (Domain, {"email": None}),
        (Domain, {"email": ""}),
        (Domain, {"email__startswith": " "}),
        (Domain, {"organization": None}),
        (Domain, {"name__endswith": ".example"}),
        (Issue, {"status": "open"}),
        (Issue, {"status": "closed"}),
        (Issue, {"status": "in_review"}),
        (Issue, {"status": "spam"}),
        (Issue, {"status": None}),
        (Issue, {"status": ""}),
        (Issue, {"is_hidden": True}),
        (Issue, {"views": None}),
        (Issue, {"domain": None}),
        (Issue, {"description": ""}),
        (Issue, {"description__contains": "{{"}),
        (Issue, {"description__contains": "<script>"}),
        (Issue, {"description__contains": "\n"}),
        (Issue, {"description__contains": "\u0645"}),
        (Issue, {"description__contains": "\u200d"}),
    ],
    ids=lambda value: repr(value) if isinstance(value, dict) else value.__name__,
)
def test_seeded_data_has_rows_matching(seeded, model, lookup):
    assert model.objects.filter(**lookup).exists()


def test_seeded_issues_use_all_nine_labels(seeded):
    labels = set(Issue.objects.values_list("label", flat=True))

    assert labels == set(Issue.Label.values)


def test_some_issue_descriptions_hold_emoji(seeded):
    descriptions = Issue.objects.values_list("description", flat=True)

    assert any(EMOJI.search(description) for description in descriptions)


def test_some_issue_descriptions_are_longer_than_a_preview(seeded):
    descriptions = Issue.objects.values_list("description", flat=True)

    assert any(len(description) > 100 for description in descriptions)


def test_some_domain_emails_are_invalid(seeded):
    def is_invalid(address):
        try:
            validate_email(address.strip())
        except ValidationError:
            return True
        return False

    addresses = Domain.objects.exclude(email=None).exclude(email="")

    assert any(
        is_invalid(address) for address in addresses.values_list("email", flat=True)
    )


def test_some_domains_share_an_email_address(seeded):
    shared = (
        Domain.objects.exclude(email=None)
        .exclude(email="")
        .values("email")
        .annotate(domains=Count("pk"))
        .filter(domains__gt=1)
    )

    assert shared.exists()


def test_some_organizations_have_several_domains(seeded):
    shared = Organization.objects.annotate(domains=Count("domain")).filter(
        domains__gt=1
    )

    assert shared.exists()


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--domains", "-1"], "--domains must be from 0 to 10,000,000, not -1."),
        (
            ["--domains", "99999999999999999999"],
            "--domains must be from 0 to 10,000,000, not 99999999999999999999.",
        ),
        (
            ["--week", "9999-W52"],
            "--week must lie between 1900 and 9000, not 9999-W52.",
        ),
        (["--issues", "-5"], "--issues must be from 0 to 500,000,000, not -5."),
        (["--domains", "0"], "--issues needs at least one domain; set --domains."),
        (["--week", "2026-48"], "--week must look like 2026-W48, not '2026-48'."),
        (["--week", "2026-W60"], "--week 2026-W60 is not a week of 2026."),
    ],
)
def test_bad_arguments_are_refused_with_one_line(arguments, message):
    with pytest.raises(CommandError) as raised:
        call_command("seed_demo", *arguments, stdout=StringIO())

    assert str(raised.value) == message
    assert not Domain.objects.exists()
