"""The figures of a weekly report, for many domains at once.

Two queries serve any number of domains: one aggregate over the counted
issues, grouped by domain, and one query for each domain's newest issues.
``compute_figures`` runs them for a list of domains, on any database, with a
window function numbering the issues. ``FigureStream`` runs them once for a
whole run on PostgreSQL and reads both results as streams in the run's
domain order, so that the issue table is scanned once rather than once per
batch; there the newest issues come from a LATERAL join that reads each
domain's few rows from the issue index instead of numbering them all.
"""

import functools
import itertools
import operator
from dataclasses import dataclass, field

import regex
from django.db import connection
from django.db.models import Count, F, Q, Window
from django.db.models.expressions import RawSQL
from django.db.models.functions import Length, RowNumber, Substr

from . import conf

# Control characters are dropped, except the ones that are white space: a
# line break between two words must still leave a space between them.
_CONTROL = regex.compile(r"[\p{Cc}--\p{White_Space}]", flags=regex.V1)
ELLIPSIS = "…"

# Descriptions can be megabytes long, so the database returns only a prefix.
# The prefix is long enough for the cut unless the text is mostly white
# space or very long grapheme clusters; then the whole text is read again.
_PREFIX_PER_CHARACTER = 8
_MIN_PREFIX = 400


def remove_control_characters(text):
    """Drop control characters other than white space."""
    return _CONTROL.sub("", text)


def clean_description(text, limit):
    """Return ``text`` tidied and cut to ``limit`` graphemes, and whether it
    was cut.

    Control characters go, white space runs become one space, the ends are
    stripped; the cut never splits what a reader sees as one character.
    """
    text = text or ""

    # Most long descriptions are cut well inside their first 2 * limit
    # characters, so only that head is tidied; the whole text is tidied
    # only when the head cannot decide.
    head_length = 2 * limit + 2
    if len(text) > head_length:
        cut = _cut(_tidy(text[:head_length]), limit)
        if cut is not None:
            return cut

    text = _tidy(text)
    return _cut(text, limit) or (text, False)


def _tidy(text):
    # str.split() splits on Unicode's White_Space and on U+001C to U+001F,
    # which are control characters and gone by then (a test checks this
    # against every code point).
    return " ".join(remove_control_characters(text).split())


def _cut(text, limit):
    """``text`` cut after ``limit`` graphemes, or None when it has no more.

    A cut made in a head of the text holds for the whole text: it falls
    before the head's last character, and where a grapheme ends depends
    only on the characters before that point and the one right after it.
    """
    if len(text) <= limit:
        # No text has more graphemes than characters.
        return None

    if text.isascii():
        # Each ASCII character is a grapheme of its own, now that no CR LF
        # pair is left.
        kept = limit
    else:
        kept = _first_graphemes(limit).match(text).end()
    if kept == len(text):
        return None
    return text[:kept] + ELLIPSIS, True


@functools.cache
def _first_graphemes(limit):
    return regex.compile(rf"\X{{0,{limit}}}")


@dataclass
class RecentIssue:
    pk: int
    description: str
    views: int
    label: str
    url: str

    def as_dict(self):
        return {
            "description": self.description,
            "views": self.views,
            "label": self.label,
            "url": self.url,
        }


@dataclass
class Figures:
    open: int = 0
    closed: int = 0
    opened_this_week: int = 0
    closed_this_week: int = 0
    recent: list = field(default_factory=list)

    @property
    def total(self):
        return self.open + self.closed

    @classmethod
    def from_dict(cls, data):
        return cls(
            open=data["open"],
            closed=data["closed"],
            opened_this_week=data["opened_this_week"],
            closed_this_week=data["closed_this_week"],
            recent=[RecentIssue(pk=None, **issue) for issue in data["recent"]],
        )

    def as_dict(self):
        return {
            "open": self.open,
            "closed": self.closed,
            "total": self.total,
            "opened_this_week": self.opened_this_week,
            "closed_this_week": self.closed_this_week,
            "recent": [issue.as_dict() for issue in self.recent],
        }


def counted_issues(domains, week):
    """Issues that a report counts: created before the week ends, shown,
    and not spam.

    ``domains`` is a list of domain ids or a queryset of domains.
    """
    Issue = conf.get_issue_model()
    return Issue.objects.filter(_counted(week), domain__in=domains)


def _counted(week):
    # A NULL status is not spam, hence the explicit test.
    return (Q(status__isnull=True) | ~Q(status="spam")) & Q(
        created__lt=week.end, is_hidden=False
    )


def label_names():
    """Label numbers to names, read from the host model's choices."""
    Issue = conf.get_issue_model()
    return {
        value: str(name) for value, name in Issue._meta.get_field("label").flatchoices
    }


def compute_figures(domain_ids, week):
    """Return ``{domain_id: Figures}`` for every id in ``domain_ids``."""
    figures = {domain_id: Figures() for domain_id in domain_ids}
    if not domain_ids:
        return figures

    for row in _aggregate(domain_ids, week):
        _add_counts(figures[row.pop("domain_id")], **row)

    for domain_id, issue in _recent(domain_ids, week):
        figures[domain_id].recent.append(issue)
    return figures


class FigureStream:
    """Figures of a run's domains, read on PostgreSQL from two queries.

    ``domains`` is a queryset of the run's domains and ``sort_key`` an
    expression over their fields that orders them exactly as the caller
    reads them, so each result is consumed in step with the caller.
    """

    chunk_size = 2000

    def __init__(self, domains, week, sort_key):
        ordered = _ordered_domains(domains, sort_key)

        # One narrow row per domain: read through an ordinary cursor, which
        # PostgreSQL may run in parallel (it never does for a server-side
        # one), and kept on the client, a few megabytes at most.
        counts = self._read(*_counts_sql(domains, ordered, week))
        self._counts = _Groups(counts)

        # Ten rows per domain, with text: streamed from a server-side cursor.
        recent = self._read(*_recent_sql(ordered, week), server_side=True)
        self._recent = _Groups(_recent_issues(recent))

    def figures_for(self, domain_id):
        """The figures of the next domain in order, which must have this id."""
        figures = Figures()
        for _, *counts in self._counts.take(domain_id):
            _add_counts(figures, *counts)
        figures.recent = [issue for _, issue in self._recent.take(domain_id)]
        return figures

    def _read(self, sql, params, server_side=False):
        """Yield the rows of ``sql``, fetched a chunk at a time.

        A server-side cursor is declared WITH HOLD, since Django runs in
        autocommit: it outlives the commits of the batches read alongside.
        """
        cursor = connection.chunked_cursor() if server_side else connection.cursor()
        with cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(self.chunk_size):
                yield from rows


class _Groups:
    """Rows keyed by domain id in their first item, taken a domain at a
    time in the order the rows come."""

    def __init__(self, rows):
        self._groups = itertools.groupby(rows, key=operator.itemgetter(0))
        self._next = next(self._groups, None)

    def take(self, domain_id):
        """The rows of this domain if it comes next, else none."""
        if self._next is None or self._next[0] != domain_id:
            return []
        rows = list(self._next[1])
        self._next = next(self._groups, None)
        return rows


def _ordered_domains(domains, sort_key):
    """SQL for the domains' ids and sort keys, in the caller's order."""
    return (
        domains.annotate(weekly_sort_key=sort_key)
        .order_by("weekly_sort_key")
        .values_list("pk", "weekly_sort_key")
        .query.sql_with_params()
    )


def _counts_sql(domains, ordered, week):
    """The aggregate, grouped by domain id and only then joined to the
    ordered domains: sorting the grouped rows rather than every issue."""
    domains_sql, domains_params = ordered
    Issue = conf.get_issue_model()
    domain_column = connection.ops.quote_name(Issue._meta.get_field("domain").column)
    counts_sql, counts_params = _aggregate(domains, week).query.sql_with_params()

    sql = f"""
        SELECT counts.{domain_column}, counts.counted, counts.closed,
               counts.opened, counts.closed_in_week
        FROM ({domains_sql}) AS weekly_domain (domain_id, sort_key)
        JOIN ({counts_sql}) AS counts
          ON counts.{domain_column} = weekly_domain.domain_id
        ORDER BY weekly_domain.sort_key
    """  # nosec B608: only SQL compiled by the ORM is interpolated
    return sql, (*domains_params, *counts_params)


def _recent_sql(ordered, week):
    """Each domain's newest issues, read from the issue index a few rows per
    domain through a LATERAL join, with a prefix of their descriptions."""
    domains_sql, domains_params = ordered
    Issue = conf.get_issue_model()
    count = conf.get("RECENT_ISSUES")
    newest = (
        Issue.objects.filter(
            _counted(week), domain=RawSQL("weekly_domain.domain_id", ())
        )
        .order_by("-created", "-pk")
        .values_list("pk", "created", "views", "label", "description")[:count]
    )
    newest_sql, newest_params = newest.query.sql_with_params()

    sql = f"""
        SELECT weekly_domain.domain_id, recent.pk,
               substr(recent.description, 1, %s), length(recent.description),
               recent.views, recent.label
        FROM ({domains_sql}) AS weekly_domain (domain_id, sort_key)
        CROSS JOIN LATERAL ({newest_sql})
          AS recent (pk, created, views, label, description)
        ORDER BY weekly_domain.sort_key, recent.created DESC, recent.pk DESC
    """  # nosec B608: only SQL compiled by the ORM is interpolated
    return sql, (_description_prefix(), *domains_params, *newest_params)


def _add_counts(figures, counted, closed, opened, closed_in_week):
    """Set the counts, given in the order of the aggregate's columns."""
    figures.closed = closed
    figures.open = counted - closed
    figures.opened_this_week = opened
    figures.closed_this_week = closed_in_week


def _aggregate(domains, week):
    """Rows of counts, one per domain that has counted issues."""
    closed = Q(status="closed")
    return (
        counted_issues(domains, week)
        .order_by()
        .values("domain_id")
        .annotate(
            counted=Count("pk"),
            closed=Count("pk", filter=closed),
            opened=Count("pk", filter=Q(created__gte=week.start)),
            closed_in_week=Count(
                "pk",
                filter=closed
                & Q(closed_date__gte=week.start, closed_date__lt=week.end),
            ),
        )
    )


def _description_prefix():
    limit = conf.get("DESCRIPTION_LENGTH")
    return max(_MIN_PREFIX, limit * _PREFIX_PER_CHARACTER)


def _recent(domains, week):
    """Yield ``(domain_id, RecentIssue)``, newest first within a domain."""
    count = conf.get("RECENT_ISSUES")
    prefix = _description_prefix()

    # The window numbers the issues on narrow rows; only the few it keeps
    # are then read with their descriptions, so that a large text is never
    # loaded for an issue the report does not show.
    newest_first = [F("created").desc(), F("pk").desc()]
    kept = (
        counted_issues(domains, week)
        .annotate(
            position=Window(
                RowNumber(), partition_by=F("domain_id"), order_by=newest_first
            )
        )
        .filter(position__lte=count)
        .values("pk")
    )
    Issue = conf.get_issue_model()
    rows = (
        Issue.objects.filter(pk__in=kept)
        .annotate(
            description_prefix=Substr("description", 1, prefix),
            description_length=Length("description"),
        )
        .order_by("domain_id", *newest_first)
        .values_list(
            "domain_id",
            "pk",
            "description_prefix",
            "description_length",
            "views",
            "label",
        )
    )
    return _recent_issues(rows)


def _recent_issues(rows):
    """Turn ``(domain_id, pk, description prefix, description length,
    views, label)`` rows into ``(domain_id, RecentIssue)``."""
    Issue = conf.get_issue_model()
    limit = conf.get("DESCRIPTION_LENGTH")
    prefix = _description_prefix()
    labels = label_names()
    url_base, url_path = conf.site_url(), conf.get("ISSUE_PATH")

    for domain_id, pk, text, length, views, label in rows:
        description, was_cut = clean_description(text, limit)
        if (length or 0) > prefix and not was_cut:
            # Mostly white space or long clusters: the prefix cannot decide
            # the cut, so this one description is read whole.
            text = Issue.objects.values_list("description", flat=True).get(pk=pk)
            description, _ = clean_description(text, limit)

        yield (
            domain_id,
            RecentIssue(
                pk=pk,
                description=description,
                views=views or 0,
                label=labels.get(label, "" if label is None else str(label)),
                url=url_base + url_path.format(pk=pk),
            ),
        )
