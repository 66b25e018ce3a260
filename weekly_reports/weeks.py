"""ISO weeks in the project's time zone."""

import datetime
import re
from dataclasses import dataclass

from django.utils import timezone

from .exceptions import ReportError

_WEEK_PATTERN = re.compile(r"([0-9]{4})-W([0-9]{2})")


@dataclass(frozen=True, order=True)
class IsoWeek:
    year: int
    week: int

    @classmethod
    def parse(cls, text):
        """Parse ``YYYY-Www``; raise ReportError naming the bad value."""
        match = _WEEK_PATTERN.fullmatch(text.strip())
        if not match:
            raise ReportError(f"--week must look like 2026-W48, not {text!r}.")

        year, week = int(match[1]), int(match[2])
        try:
            monday = datetime.date.fromisocalendar(year, week, 1)
        except ValueError as error:
            raise ReportError(f"--week {text!r} is not a week of {year}.") from error

        try:
            monday + datetime.timedelta(days=7)
        except OverflowError as error:
            raise ReportError(f"--week {text!r} ends past the last date.") from error
        return cls(year, week)

    @classmethod
    def containing(cls, moment):
        """The week that holds ``moment``, read in the current time zone."""
        local_date = timezone.localtime(moment).date()
        year, week, _ = local_date.isocalendar()
        return cls(year, week)

    @classmethod
    def last_complete(cls, now=None):
        """The last week that has ended before ``now``."""
        return cls.containing(now or timezone.now()).previous()

    def previous(self):
        return IsoWeek.containing(self.start - datetime.timedelta(days=1))

    def next(self):
        return IsoWeek.containing(self.end)

    @property
    def start(self):
        """Monday 00:00 of this week, an aware datetime."""
        monday = datetime.date.fromisocalendar(self.year, self.week, 1)
        return timezone.make_aware(datetime.datetime.combine(monday, datetime.time()))

    @property
    def end(self):
        """Monday 00:00 of the following week (exclusive)."""
        monday = datetime.date.fromisocalendar(self.year, self.week, 1)
        following = monday + datetime.timedelta(days=7)
        return timezone.make_aware(
            datetime.datetime.combine(following, datetime.time())
        )

    def __str__(self):
        return f"{self.year:04d}-W{self.week:02d}"
