"""The figures of a weekly report, for many domains at once.

Two queries serve any number of domains: one aggregate over the counted
issues, grouped by domain, and one window query that numbers each domain's
issues newest first and keeps the first few. ``compute_figures`` runs them
for a list of domains; ``FigureStream`` runs them once for a whole run and
reads both results as streams in the run's domain order, so that the issue
table is scanned once rather than once per batch.
"""

from dataclasses import dataclass, field

import regex
from django.db.models import Count, F, Q, Window
from django.db.models.functions import Length, RowNumber, Substr

from . import conf

# Control characters are dropped, except the ones that are white space: a
# line break between two words must still leave a space between them.
_CONTROL = regex.compile(r"[\p{Cc}--\p{White_Space}]", flags=regex.V1)
_WHITESPACE = regex.compile(r"\p{White_Space}+")
_GRAPHEME = regex.compile(r"\X")
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
    text = _CONTROL.sub("", text or "")
    text = _WHITESPACE.sub(" ", text).strip()

    graphemes = _GRAPHEME.findall(text)
    if len(graphemes) <= limit:
        return text, False
    return "".join(graphemes[:limit]) + ELLIPSIS, True


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
    and not spam. A NULL status is not spam, hence the explicit test.

    ``domains`` is a list of domain ids or a queryset of domains.
    """
    Issue = conf.get_issue_model()
    return Issue.objects.filter(
        Q(status__isnull=True) | ~Q(status="spam"),
        domain__in=domains,
        created__lt=week.end,
        is_hidden=False,
    )


def label_names():
    """Label numbers to names, read from the host model's choices."""
    Issue = conf.get_issue_model()
    return {
        value: str(name) for value, name in Issue._meta.get_field("label").flatchoices
    }


def issue_url(pk):
    return conf.site_url() + conf.get("ISSUE_PATH").format(pk=pk)


def compute_figures(domain_ids, week):
    """Return ``{domain_id: Figures}`` for every id in ``domain_ids``."""
    figures = {domain_id: Figures() for domain_id in domain_ids}
    if not domain_ids:
        return figures

    for row in _aggregate(domain_ids, week):
        _add_counts(figures[row["domain_id"]], row)

    for domain_id, issue in _recent(domain_ids, week):
        figures[domain_id].recent.append(issue)
    return figures


class FigureStream:
    """Figures of a run's domains, read from two streaming queries.

    ``sort_key`` orders the issues' domains exactly as the caller reads the
    domains, so each stream is consumed in step with them.
    """

    def __init__(self, domains, week, sort_key):
        chunk = 2000
        counts = _aggregate(domains, week, order_by=[sort_key])
        self._counts = _Peekable(
            (row["domain_id"], row) for row in counts.iterator(chunk_size=chunk)
        )
        self._recent = _Peekable(
            _recent(domains, week, order_by=[sort_key], chunk_size=chunk)
        )

    def figures_for(self, domain_id):
        """The figures of the next domain in order, which must have this id."""
        figures = Figures()
        if self._counts.next_is(domain_id):
            _add_counts(figures, next(self._counts)[1])
        while self._recent.next_is(domain_id):
            figures.recent.append(next(self._recent)[1])
        return figures


class _Peekable:
    """An iterator of rows keyed by domain id, whose next key can be read."""

    _end = object()

    def __init__(self, rows):
        self._rows = iter(rows)
        self._next = self._end

    def next_is(self, domain_id):
        if self._next is self._end:
            self._next = next(self._rows, self._end)
        return self._next is not self._end and self._next[0] == domain_id

    def __next__(self):
        row, self._next = self._next, self._end
        return row


def _add_counts(figures, row):
    figures.closed = row["closed"]
    figures.open = row["counted"] - row["closed"]
    figures.opened_this_week = row["opened"]
    figures.closed_this_week = row["closed_in_week"]


def _aggregate(domains, week, order_by=()):
    """Rows of counts, one per domain that has counted issues."""
    closed = Q(status="closed")
    return (
        counted_issues(domains, week)
        .order_by(*order_by)
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


def _recent(domains, week, order_by=(), chunk_size=2000):
    """Yield ``(domain_id, RecentIssue)``, newest first within a domain."""
    Issue = conf.get_issue_model()
    count = conf.get("RECENT_ISSUES")
    limit = conf.get("DESCRIPTION_LENGTH")
    prefix = max(_MIN_PREFIX, limit * _PREFIX_PER_CHARACTER)
    labels = label_names()

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
    rows = (
        Issue.objects.filter(pk__in=kept)
        .annotate(
            description_prefix=Substr("description", 1, prefix),
            description_length=Length("description"),
        )
        .order_by(*(order_by or ["domain_id"]), *newest_first)
        .values_list(
            "domain_id",
            "pk",
            "description_prefix",
            "description_length",
            "views",
            "label",
        )
    )

    for domain_id, pk, text, length, views, label in rows.iterator(chunk_size):
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
                url=issue_url(pk),
            ),
        )
