"""One domain's report for one week, and whether it may be sent."""

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from .stats import Figures


class Reason:
    """Why a report is skipped, in the order in which they are tested."""

    INACTIVE = "inactive"
    NO_EMAIL = "no_email"
    INVALID_EMAIL = "invalid_email"
    UNSUBSCRIBED = "unsubscribed"
    ALREADY_SENT = "already_sent"


def is_valid_address(address):
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


def parse_addresses(text):
    """Split a list of addresses typed one per line (commas and semicolons
    work too) into stripped, non-empty entries."""
    for separator in ",;":
        text = text.replace(separator, "\n")
    return [line.strip() for line in text.splitlines() if line.strip()]


def unique_addresses(addresses):
    """Drop repeats, comparing case-insensitively; keep the first spelling."""
    seen = set()
    unique = []
    for address in addresses:
        key = address.casefold()
        if key not in seen:
            seen.add(key)
            unique.append(address)
    return unique


@dataclass
class Report:
    domain_pk: int
    domain_name: str
    organization: str
    email: str | None
    is_active: bool
    is_subscribed: bool
    extra_recipients: list
    week: object
    figures: Figures = field(default_factory=Figures)
    status: str = ""
    reason: str | None = None
    error: str = ""

    @property
    def recipients(self):
        """The domain's own address first, then valid extra addresses."""
        extras = [
            address for address in self.extra_recipients if is_valid_address(address)
        ]
        return unique_addresses([self.email, *extras] if self.email else extras)

    def skip_reason(self):
        """The first reason, apart from an earlier send, to skip this report."""
        if not self.is_active:
            return Reason.INACTIVE
        if not self.email:
            return Reason.NO_EMAIL
        if not is_valid_address(self.email):
            return Reason.INVALID_EMAIL
        if not self.is_subscribed:
            return Reason.UNSUBSCRIBED
        return None

    @classmethod
    def sample(cls, week):
        """A report of an imaginary domain, for trying a template when there
        is no real domain to show."""
        return cls(
            domain_pk=0,
            domain_name="example.com",
            organization="Example",
            email="security@example.com",
            is_active=True,
            is_subscribed=True,
            extra_recipients=[],
            week=week,
        )

    @classmethod
    def from_json(cls, data, week):
        """Rebuild a report from ``as_json()``, as a Celery worker sends it."""
        return cls(
            domain_pk=None,
            domain_name=data["domain"],
            organization=data["organization"],
            email=data["email"],
            is_active=True,
            is_subscribed=True,
            extra_recipients=[],
            week=week,
            figures=Figures.from_dict(data),
            status=data["status"],
            reason=data["reason"],
        )

    def as_json(self):
        return {
            "domain": self.domain_name,
            "organization": self.organization,
            "email": self.email,
            "week": str(self.week),
            "status": self.status,
            "reason": self.reason,
            **self.figures.as_dict(),
        }
