"""List filters of the weekly reports admin.

Each filter ignores a value it does not offer: a hand-made query string must
not reach the database as a lookup it cannot take.
"""

import re

from django.contrib import admin
from django.db.models import Q

from .models import Delivery, Subscription
from .reports import is_valid_address


class ReportStateFilter(admin.SimpleListFilter):
    title = "report"
    parameter_name = "report"

    def lookups(self, request, model_admin):
        return [("on", "on"), ("off", "off")]

    def queryset(self, request, queryset):
        if self.value() in ("on", "off"):
            return queryset.filter(report_on=self.value() == "on")
        return queryset


def email_state(email):
    """``"valid"``, ``"invalid"`` or ``"missing"``, judged as a run judges."""
    email = (email or "").strip()
    if not email:
        return "missing"
    return "valid" if is_valid_address(email) else "invalid"


class EmailFilter(admin.SimpleListFilter):
    """Whether a run can send to the domain's own address.

    Django's email validator has no SQL equivalent, so the addresses are read
    and judged in Python; the ones to leave out are usually few, hence the
    exclusion for valid ones.
    """

    title = "email"
    parameter_name = "email"

    def lookups(self, request, model_admin):
        return [
            ("valid", "valid"),
            ("invalid", "invalid"),
            ("missing", "missing"),
        ]

    def queryset(self, request, queryset):
        wanted = self.value()
        if wanted not in ("valid", "invalid", "missing"):
            return queryset

        states = {
            pk: email_state(email) for pk, email in queryset.values_list("pk", "email")
        }
        if wanted == "valid":
            return queryset.exclude(
                pk__in=[pk for pk, state in states.items() if state != "valid"]
            )
        return queryset.filter(
            pk__in=[pk for pk, state in states.items() if state == wanted]
        )


class LastReportFilter(admin.SimpleListFilter):
    title = "last report"
    parameter_name = "last_report"

    def lookups(self, request, model_admin):
        return [*Delivery.Status.choices, ("never", "never")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "never":
            return queryset.filter(last_status__isnull=True)
        if value in Delivery.Status.values:
            return queryset.filter(last_status=value)
        return queryset


class ChangedThroughFilter(admin.SimpleListFilter):
    """How the report was last turned on or off; "default" also covers the
    domains that nobody ever turned on or off."""

    title = "turned on or off through"
    parameter_name = "changed_through"

    def lookups(self, request, model_admin):
        return Subscription.Source.choices

    def queryset(self, request, queryset):
        value = self.value()
        if value == Subscription.Source.DEFAULT:
            return queryset.filter(
                Q(weekly_report_subscription__isnull=True)
                | Q(weekly_report_subscription__changed_by=value)
            )
        if value in Subscription.Source.values:
            return queryset.filter(weekly_report_subscription__changed_by=value)
        return queryset


_WEEK = re.compile(r"\d{4}-W\d{2}")


class WeekFilter(admin.SimpleListFilter):
    """The weeks in the ledger, newest first."""

    title = "week"
    parameter_name = "week"

    def lookups(self, request, model_admin):
        weeks = (
            Delivery.objects.order_by("-week").values_list("week", flat=True).distinct()
        )
        return [(week, week) for week in weeks]

    def queryset(self, request, queryset):
        if self.value() and _WEEK.fullmatch(self.value()):
            return queryset.filter(week=self.value())
        return queryset
