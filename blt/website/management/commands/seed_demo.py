"""Fill the database with BLT-shaped demo data, at any size and repeatably.

The rows imitate what a weekly report meets on a real BLT platform: domains
that share an organization or have none, addresses that are missing, broken,
padded or shared, issues in every status and label, and descriptions that
trip naive code (long text, right-to-left scripts, emoji sequences, markup,
template syntax, control characters).

Every value comes from one ``random.Random(seed)`` and from the chosen week,
never from the clock, so the same arguments give the same rows. Rows are
generated lazily and written as they come, in chunks with ``bulk_create`` or,
for issues on PostgreSQL, in one COPY stream, so memory stays flat however
many issues are asked for.
"""

import datetime
import io
import itertools
import random
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import IntegrityError, connection, reset_queries, transaction
from django.db.models import Max
from django.utils import timezone

from blt.website.models import Domain, Issue, Organization

CHUNK_SIZE = 5000
WEEKS_OF_ISSUES = 8
WEEK = datetime.timedelta(weeks=1)
WEEK_SECONDS = int(WEEK.total_seconds())
DAY_SECONDS = 24 * 60 * 60

ISO_WEEK = re.compile(r"([0-9]{4})-W([0-9]{2})")

WORDS = (
    "login button page broken error slow search form upload image link token "
    "cookie redirect dashboard checkout pricing footer header menu api query "
    "password reset mobile table trace stack leaks csrf sql script svg flag "
    "typo missing empty never when with after without on in is not 500 404 "
    "timeout misaligned overflow caf\u00e9 cafe\u0301 na\u00efve"
).split()

NON_LATIN = (
    "\u767b\u5f55\u9875\u9762\u51fa\u73b0\u9519\u8bef",  # Chinese
    "\u0645\u0634\u0643\u0644\u0629 \u0641\u064a \u062a\u0633\u062c\u064a\u0644 "
    "\u0627\u0644\u062f\u062e\u0648\u0644",  # Arabic, right to left
    "\u05e9\u05d2\u05d9\u05d0\u05d4 \u05d1\u05d8\u05d5\u05e4\u05e1",  # Hebrew
    "\u041e\u0448\u0438\u0431\u043a\u0430 \u043f\u0440\u0438 \u0432\u0445\u043e"
    "\u0434\u0435",  # Cyrillic
    "\u0936\u0940\u0930\u094d\u0937\u0915 \u0917\u093e\u092f\u092c \u0939\u0948",
    "\u0e40\u0e21\u0e19\u0e39\u0e44\u0e21\u0e48\u0e41\u0e2a\u0e14\u0e07",  # Thai
)

# Written as escapes so that every joiner and modifier is visible in review.
EMOJI = (
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",  # family, ZWJ
    "\U0001f9d1\U0001f3ff\u200d\U0001f4bb",  # technologist, dark skin tone
    "\U0001f44d\U0001f3fd",  # thumbs up, medium skin tone
    "\U0001f1e9\U0001f1ea\U0001f1ef\U0001f1f5",  # two flags: DE, JP
    "\U0001f3f3\ufe0f\u200d\U0001f308",  # rainbow flag
    "1\ufe0f\u20e3",  # keycap one
    "\U0001f41b",  # bug
)

MARKUP = (
    "<script>alert('xss')</script>",
    "<b>bold</b> & <i>italic</i> &amp; &lt;b&gt;",
    '<a href="javascript:alert(1)">click</a>',
    "{{ x }}",
    "{% if user %}{{ user.password }}{% endif %}",
    "{# hidden #} {% load static %}",
    "%s %(name)s {0}",
)

CONTROL = (
    "\r\n",
    "\n\n\t",
    "\x07",
    "\x1b[31m",
    "\x0b\x0c",
    "\u200b",
    "\u202e",
    "\x7f",
    "\u2028",
)

ORGANIZATION_NAMES = (
    "Acme Labs",
    "M\u00fcller & S\u00f6hne GmbH",
    "\u682a\u5f0f\u4f1a\u793e\u30b5\u30f3\u30d7\u30eb",
    "\u041e\u041e\u041e \u041f\u0440\u0438\u043c\u0435\u0440",
    "\u0634\u0631\u0643\u0629 \u0627\u0644\u0645\u062b\u0627\u0644",
    "<b>Bold</b> Corp",
    "{{ org }} Foundation",
    'O\'Reilly "Quoted" Ltd',
    "\U0001f680 Rocket Startup",
)

IDN_LABELS = (
    "b\u00fccher",
    "\u043f\u0440\u0438\u043c\u0435\u0440",
    "\u4f8b\u3048",
    "\u03b4\u03bf\u03ba\u03b9\u03bc\u03ae",
    "caf\u00e9",
)

MAILBOXES = ("security", "bugs", "admin", "webmaster", "info")

# Each is rejected by Django's EmailValidator; ``{name}`` is the domain.
INVALID_EMAILS = (
    "not-an-email",
    "security@",
    "@{name}",
    "security@@{name}",
    "s\u00e9curit\u00e9@{name}",
    "security@{name}, bugs@{name}",
    "security at {name}",
    "security@example",
)

# The same mailbox twice, differing only in case.
SHARED_EMAILS = ("security@shared-host.example", "Security@Shared-Host.example")

ISSUE_STATUSES = ("open", "closed", "in_review", "spam", None, "")
ISSUE_STATUS_WEIGHTS = tuple(itertools.accumulate((45, 30, 8, 7, 5, 5)))


@dataclass(frozen=True)
class SeedCounts:
    organizations: int
    domains: int
    issues: int


@dataclass(frozen=True)
class FirstNumbers:
    """Where the numbers in names and urls start.

    Without --clear, new rows are numbered after the existing ones so that
    the unique names and urls do not collide with an earlier run's.
    """

    organization: int
    domain: int
    issue: int

    @classmethod
    def after_existing_rows(cls):
        def after(model):
            return (model.objects.aggregate(last=Max("pk"))["last"] or 0) + 1

        return cls(after(Organization), after(Domain), after(Issue))


def parse_week(text):
    """Return Monday 00:00 of ISO week ``YYYY-Www`` in the current time zone."""
    match = ISO_WEEK.fullmatch(text)
    if not match:
        raise CommandError(f"--week must look like 2026-W48, not {text!r}.")

    try:
        monday = datetime.date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError as error:
        raise CommandError(f"--week {text} is not a week of {match[1]}.") from error

    # The issues spread over the eight weeks before and the one after.
    if not 1900 <= monday.year <= 9000:
        raise CommandError(f"--week must lie between 1900 and 9000, not {text}.")
    return timezone.make_aware(datetime.datetime.combine(monday, datetime.time()))


def last_complete_week():
    """Return Monday 00:00 of the last ISO week that has ended."""
    today = timezone.localdate()
    this_monday = today - datetime.timedelta(days=today.weekday())
    monday = this_monday - WEEK
    return timezone.make_aware(datetime.datetime.combine(monday, datetime.time()))


def week_label(week_start):
    year, week, _ = week_start.isocalendar()
    return f"{year}-W{week:02d}"


def chunked(items, size):
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


@contextmanager
def explicit_timestamps(*models):
    """Make bulk_create store the created and modified values of instances.

    auto_now and auto_now_add make pre_save replace any value with the
    current time, on bulk_create too, which would date every demo row to the
    moment of seeding. The flags are lowered for this block only and restored
    even when seeding fails. They belong to the model class, so another
    thread saving these models meanwhile would get no timestamps; a
    management command runs alone.
    """
    fields = [
        field
        for model in models
        for field in model._meta.concrete_fields
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    ]
    saved_flags = [(field, field.auto_now, field.auto_now_add) for field in fields]
    for field in fields:
        field.auto_now = field.auto_now_add = False

    try:
        yield
    finally:
        for field, auto_now, auto_now_add in saved_flags:
            field.auto_now = auto_now
            field.auto_now_add = auto_now_add


def insert(model, objects):
    model.objects.bulk_create(objects, batch_size=CHUNK_SIZE)
    # With DEBUG on, Django keeps the SQL of every query, and the SQL of a
    # bulk insert is large: millions of rows would pile up in memory.
    reset_queries()


def insert_rows(model, field_names, rows):
    """Insert tuples of values, in the order of ``field_names``, in chunks."""
    count = 0
    for chunk in chunked(rows, CHUNK_SIZE):
        objects = [model(**dict(zip(field_names, row, strict=True))) for row in chunk]
        insert(model, objects)
        count += len(chunk)
    return count


def copy_text(text):
    # COPY's text format gives these four characters a meaning of their own.
    return (
        text.replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def copy_value(value):
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, str):
        return copy_text(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return str(value)


class CopySource:
    """A file to read COPY data from, written only as it is read.

    PostgreSQL stores one part while Python generates the next, and memory
    holds one batch of lines at a time, however many rows there are.
    """

    def __init__(self, lines, batch_size=1000):
        self._batches = ("".join(batch) for batch in chunked(lines, batch_size))
        self._current = io.StringIO()

    def read(self, size=-1):
        data = self._current.read(size)
        while not data:
            batch = next(self._batches, None)
            if batch is None:
                return ""
            self._current = io.StringIO(batch)
            data = self._current.read(size)
        return data


def copy_rows(model, field_names, rows):
    """Insert tuples of values with PostgreSQL's COPY, in one stream.

    About three times faster than bulk_create on a million issues, since it
    skips model instances and Django's SQL compiler, but it gives back no
    ids: it only suits rows that nothing else created here points at.
    """
    count = 0

    def lines():
        nonlocal count
        for row in rows:
            count += 1
            yield "\t".join([copy_value(value) for value in row]) + "\n"

    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(
        quote(model._meta.get_field(name).column) for name in field_names
    )
    with connection.cursor() as cursor:
        cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", CopySource(lines()))
    return count


def can_copy():
    """Whether the database is PostgreSQL reached through psycopg2."""
    if connection.vendor != "postgresql":
        return False

    # Only importable where a PostgreSQL driver is installed.
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return not is_psycopg3


def clear_website_data():
    """Delete every issue, domain and organization, and restart their ids.

    Restarting the ids is what lets the same seed give the very same rows,
    primary keys included.
    """
    models = (Issue, Domain, Organization)
    for model in models:
        model.objects.all().delete()

    sequences = [
        {"table": model._meta.db_table, "column": model._meta.pk.column}
        for model in models
    ]
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_by_name_sql(no_style(), sequences):
            cursor.execute(sql)


def new_organization(rng, number, window_start):
    has_email = rng.random() < 0.5
    created = window_start - datetime.timedelta(
        seconds=rng.randrange(30 * DAY_SECONDS, 730 * DAY_SECONDS)
    )
    return Organization(
        name=f"{rng.choice(ORGANIZATION_NAMES)} {number}",
        url=f"https://org{number}.example.org",
        email=f"contact@org{number}.example.org" if has_email else None,
        created=created,
        modified=created,
    )


def domain_name(rng, number):
    if rng.random() < 0.03:
        return f"{rng.choice(IDN_LABELS)}{number}.example"
    return f"app{number}.example{rng.randrange(100)}.com"


def domain_email(rng, name):
    roll = rng.random()
    if roll < 0.025:
        return None
    if roll < 0.05:
        return ""
    if roll < 0.08:
        return rng.choice(INVALID_EMAILS).format(name=name)
    if roll < 0.09:
        return rng.choice(SHARED_EMAILS)

    address = f"{rng.choice(MAILBOXES)}@{name}"
    if roll < 0.12:
        return f"  {address} "
    if roll < 0.15:
        return address.upper()
    return address


def generate_domains(rng, count, first_numbers, window_start):
    """Yield (domain, organization or None) pairs, neither saved yet.

    About one domain in ten has no organization and one in three shares
    one with a few others; a shared organization is yielded again with each
    of its domains, and is saved by then if its first domain was.
    """
    organization_numbers = itertools.count(first_numbers.organization)
    shared_organization = None
    domains_left_to_share = 0

    for number in range(first_numbers.domain, first_numbers.domain + count):
        roll = rng.random()
        if roll < 0.10:
            organization = None
        elif roll < 0.43:
            if domains_left_to_share == 0:
                shared_organization = new_organization(
                    rng, next(organization_numbers), window_start
                )
                domains_left_to_share = rng.randint(2, 6)
            organization = shared_organization
            domains_left_to_share -= 1
        else:
            organization = new_organization(
                rng, next(organization_numbers), window_start
            )

        name = domain_name(rng, number)
        created = window_start - datetime.timedelta(
            seconds=rng.randrange(DAY_SECONDS, 365 * DAY_SECONDS)
        )
        domain = Domain(
            name=name,
            url=f"https://{name}/",
            email=domain_email(rng, name),
            is_active=rng.random() >= 0.05,
            created=created,
            modified=created,
        )
        yield domain, organization


def create_domains(rng, count, first_numbers, window_start):
    """Create domains and their organizations.

    Return the (pk, name) pairs of the domains and the number of
    organizations created.
    """
    created_domains = []
    organization_count = 0
    pairs = generate_domains(rng, count, first_numbers, window_start)
    for chunk in chunked(pairs, CHUNK_SIZE):
        # A dict rather than a set keeps the order, and so the ids, stable.
        unsaved = {
            id(organization): organization
            for _, organization in chunk
            if organization is not None and organization.pk is None
        }
        insert(Organization, list(unsaved.values()))
        organization_count += len(unsaved)

        domains = []
        for domain, organization in chunk:
            domain.organization = organization
            domains.append(domain)
        insert(Domain, domains)

        if domains[0].pk is None:
            # A backend that cannot return ids from a bulk insert.
            pks = dict(
                Domain.objects.filter(
                    name__in=[domain.name for domain in domains]
                ).values_list("name", "pk")
            )
            for domain in domains:
                domain.pk = pks[domain.name]
        created_domains.extend((domain.pk, domain.name) for domain in domains)
    return created_domains, organization_count


def issue_description(rng):
    roll = rng.random()
    if roll < 0.01:
        return ""
    if roll < 0.02:
        # An emoji sequence right where a 100-character preview is cut.
        return "a" * rng.randint(95, 100) + rng.choice(EMOJI) + " across the cut"

    word_count = rng.randint(120, 400) if roll < 0.05 else rng.randint(2, 30)
    words = rng.choices(WORDS, k=word_count)
    parts = [" ".join(words).capitalize()]
    if rng.random() < 0.12:
        parts.insert(0, rng.choice(NON_LATIN))
    if rng.random() < 0.10:
        parts.insert(rng.randint(0, len(parts)), rng.choice(EMOJI))
    if rng.random() < 0.06:
        parts.append(rng.choice(MARKUP))
    if rng.random() < 0.06:
        parts.insert(rng.randint(0, len(parts)), rng.choice(CONTROL))
    return " ".join(parts)


def issue_created(rng, week_start, window_start):
    roll = rng.random()
    if roll < 0.002:
        return week_start
    if roll < 0.004:
        return week_start + WEEK - datetime.timedelta(seconds=1)
    if roll < 0.2:
        return week_start + datetime.timedelta(seconds=rng.randrange(WEEK_SECONDS))
    return window_start + datetime.timedelta(
        seconds=rng.randrange(WEEK_SECONDS * (WEEKS_OF_ISSUES - 1))
    )


ISSUE_FIELDS = (
    "domain_id",
    "url",
    "description",
    "status",
    "views",
    "label",
    "created",
    "modified",
    "closed_date",
    "is_hidden",
)


def generate_issues(rng, count, domains, first_number, week_start):
    """Yield issues as tuples of ISSUE_FIELDS, spread over eight weeks.

    Tuples rather than model instances, since building millions of
    instances would cost more than writing the rows with COPY.

    The weeks are the chosen one and the seven before; a fifth of the issues
    fall in the chosen week, a few exactly on its first and last second.
    Some domains draw many issues and most draw few, as on a real platform.
    """
    window_start = week_start - (WEEKS_OF_ISSUES - 1) * WEEK
    popularity = list(itertools.accumulate(rng.lognormvariate(0, 1.5) for _ in domains))
    label_count = len(Issue.Label)

    for number in range(first_number, first_number + count):
        if rng.random() < 0.005:
            # BLT allows an issue without a domain; reports must ignore it.
            domain_pk, host = None, "unlisted.example"
        else:
            domain_pk, host = rng.choices(domains, cum_weights=popularity)[0]

        created = issue_created(rng, week_start, window_start)
        status = rng.choices(ISSUE_STATUSES, cum_weights=ISSUE_STATUS_WEIGHTS)[0]
        # A few open issues keep the closed_date of before they were reopened.
        was_closed = status == "closed" or (status == "open" and rng.random() < 0.02)
        closed_date = None
        if was_closed:
            closed_date = created + datetime.timedelta(
                seconds=rng.randrange(3600, 14 * DAY_SECONDS)
            )
        views = None
        if rng.random() >= 0.1:
            views = min(int(10 * (rng.paretovariate(0.7) - 1)), 1_000_000)

        yield (
            domain_pk,
            f"https://{host}/page/{number}",
            issue_description(rng),
            status,
            views,
            rng.randrange(label_count),
            created,
            closed_date or created,
            closed_date,
            rng.random() < 0.05,
        )


def seed_demo_data(
    *, domain_count, issue_count, seed, week_start, clear, use_copy=None
):
    """Create the demo rows in one transaction and return how many.

    Issues go through COPY when the database allows it (``use_copy`` None),
    or when ``use_copy`` is true; the rows are the same either way.
    """
    if use_copy is None:
        use_copy = can_copy()
    write_rows = copy_rows if use_copy else insert_rows
    rng = random.Random(seed)
    window_start = week_start - (WEEKS_OF_ISSUES - 1) * WEEK

    with transaction.atomic(), explicit_timestamps(Organization, Domain, Issue):
        if clear:
            clear_website_data()
        first_numbers = FirstNumbers.after_existing_rows()

        domains, organization_count = create_domains(
            rng, domain_count, first_numbers, window_start
        )

        issues = generate_issues(
            rng, issue_count, domains, first_numbers.issue, week_start
        )
        written = write_rows(Issue, ISSUE_FIELDS, issues)
    return SeedCounts(organization_count, len(domains), written)


class Command(BaseCommand):
    help = (
        "Create BLT-shaped demo organizations, domains and issues, dated around "
        "one ISO week. The same arguments always give the same rows."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--domains",
            type=int,
            metavar="N",
            default=40,
            help="How many domains to create (default: 40). Organizations are "
            "created along with them.",
        )
        parser.add_argument(
            "--issues",
            type=int,
            metavar="N",
            default=1200,
            help="How many issues to create over the domains (default: 1200).",
        )
        parser.add_argument(
            "--seed",
            type=int,
            metavar="S",
            default=0,
            help="Seed of the random generator; the same seed gives the same "
            "rows (default: 0).",
        )
        parser.add_argument(
            "--week",
            metavar="YYYY-Www",
            help="ISO week the data centres on, such as 2026-W48: issues fall "
            "in it and the seven weeks before (default: the last complete "
            "week).",
        )
        parser.add_argument(
            "--clear",
            action="store_true",
            help="Delete all existing organizations, domains and issues first, "
            "and restart their ids.",
        )

    def handle(self, *args, **options):
        for option, most in (("domains", 10_000_000), ("issues", 500_000_000)):
            if not 0 <= options[option] <= most:
                raise CommandError(
                    f"--{option} must be from 0 to {most:,}, not {options[option]}."
                )
        if options["issues"] and not options["domains"]:
            raise CommandError("--issues needs at least one domain; set --domains.")
        if options["week"]:
            week_start = parse_week(options["week"])
        else:
            week_start = last_complete_week()

        started = time.monotonic()
        try:
            counts = seed_demo_data(
                domain_count=options["domains"],
                issue_count=options["issues"],
                seed=options["seed"],
                week_start=week_start,
                clear=options["clear"],
            )
        except IntegrityError as error:
            first_line = str(error).splitlines()[0]
            raise CommandError(
                f"Demo rows clash with existing ones ({first_line}); "
                "run again with --clear."
            ) from error
        elapsed = time.monotonic() - started

        self.stdout.write(
            f"Seeded {counts.organizations:,} organizations, {counts.domains:,} "
            f"domains and {counts.issues:,} issues for {week_label(week_start)} "
            f"(seed {options['seed']}) in {elapsed:.1f} s."
        )
