"""The figures of a weekly report, for many domains at once.

A batch of domains costs two queries whatever its size: one aggregate over
the counted issues, grouped by domain, and one window query that numbers each
domain's issues newest first and keeps the first few.
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


def counted_issues(domain_ids, week):
    """Issues that a report counts: created before the week ends, shown,
    and not spam. A NULL status is not spam, hence the explicit test."""
    Issue = conf.get_issue_model()
    return Issue.objects.filter(
        Q(status__isnull=True) | ~Q(status="spam"),
        domain_id__in=domain_ids,
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
        item = figures[row["domain_id"]]
        item.closed = row["closed"]
        item.open = row["counted"] - row["closed"]
        item.opened_this_week = row["opened"]
        item.closed_this_week = row["closed_in_week"]

    for domain_id, issue in _recent(domain_ids, week):
        figures[domain_id].recent.append(issue)
    return figures


def _aggregate(domain_ids, week):
    closed = Q(status="closed")
    return (
        counted_issues(domain_ids, week)
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


def _recent(domain_ids, week):
    """Yield ``(domain_id, RecentIssue)``, newest first within a domain."""
    Issue = conf.get_issue_model()
    count = conf.get("RECENT_ISSUES")
    limit = conf.get("DESCRIPTION_LENGTH")
    prefix = max(_MIN_PREFIX, limit * _PREFIX_PER_CHARACTER)
    labels = label_names()

    newest_first = [F("created").desc(), F("pk").desc()]
    rows = (
        counted_issues(domain_ids, week)
        .annotate(
            position=Window(
                RowNumber(), partition_by=F("domain_id"), order_by=newest_first
            ),
            description_prefix=Substr("description", 1, prefix),
            description_length=Length("description"),
        )
        .filter(position__lte=count)
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

    rows = list(rows)
    cut_short = [row[1] for row in rows if _prefix_too_short(row, prefix, limit)]
    full_texts = dict(
        Issue.objects.filter(pk__in=cut_short).values_list("pk", "description")
        if cut_short
        else ()
    )

    for domain_id, pk, text, _length, views, label in rows:
        description, _ = clean_description(full_texts.get(pk, text), limit)
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


def _prefix_too_short(row, prefix, limit):
    """Whether the prefix alone cannot decide the cut of this description."""
    _, _, text, length, _, _ = row
    if (length or 0) <= prefix:
        return False

    _, was_cut = clean_description(text, limit)
    return not was_cut
