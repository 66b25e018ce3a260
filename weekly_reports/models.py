from django.db import models
from django.utils import timezone

from . import conf


class Subscription(models.Model):
    """Whether a domain receives the weekly report, and who changed that."""

    class Source(models.TextChoices):
        ADMIN = "admin", "admin"
        UNSUBSCRIBE_LINK = "unsubscribe_link", "unsubscribe link"
        RESUBSCRIBE_LINK = "resubscribe_link", "subscribe-again link"
        DEFAULT = "default", "default"

    domain = models.OneToOneField(
        conf.domain_model_name(),
        on_delete=models.CASCADE,
        related_name="weekly_report_subscription",
    )
    is_subscribed = models.BooleanField(
        "receives the report",
        default=True,
    )
    extra_recipients = models.TextField(
        blank=True,
        help_text="Further addresses that receive this domain's report, one per "
        "line, besides the domain's own email.",
    )
    changed_at = models.DateTimeField("changed", default=timezone.now)
    changed_by = models.CharField(
        "changed through",
        max_length=20,
        choices=Source.choices,
        default=Source.DEFAULT,
    )

    class Meta:
        verbose_name = "report subscription"

    def __str__(self):
        state = "on" if self.is_subscribed else "off"
        return f"Weekly report for {self.domain} ({state})"

    def set_subscribed(self, subscribed, source):
        """Record a change of state; return whether anything changed."""
        if self.is_subscribed == subscribed and self.pk:
            return False

        self.is_subscribed = subscribed
        self.changed_at = timezone.now()
        self.changed_by = source
        self.save()
        return True


class Delivery(models.Model):
    """The ledger: one row per domain and ISO week, in its latest state.

    The row is written in the same transaction that queues the mail, so a
    crash can never leave mail queued without a row or a row claiming mail
    that was never queued.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"
        SKIPPED = "skipped", "skipped"

    domain = models.ForeignKey(
        conf.domain_model_name(),
        null=True,
        on_delete=models.SET_NULL,
        related_name="weekly_report_deliveries",
    )
    domain_name = models.CharField(
        max_length=255,
        help_text="Kept so that the row still names its domain once the domain "
        "is deleted.",
    )
    week = models.CharField(max_length=8, help_text="ISO week, such as 2026-W48.")
    recipients = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    reason = models.CharField(
        max_length=20,
        blank=True,
        help_text="Why the report was skipped.",
    )
    error = models.TextField(blank=True, help_text="Why the last delivery failed.")
    emails = models.ManyToManyField(
        "post_office.Email",
        blank=True,
        related_name="weekly_report_deliveries",
        help_text="The queued messages of every attempt.",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "report delivery"
        verbose_name_plural = "report deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["domain", "week"], name="weekly_reports_one_per_domain_week"
            ),
        ]
        indexes = [models.Index(fields=["week", "status"])]

    def __str__(self):
        return f"{self.domain_name} {self.week}: {self.status}"


# The admin's list of domains with their report state; see proxies.py.
from .proxies import ReportDomain  # noqa: E402, F401
