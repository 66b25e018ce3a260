"""Change lists of the weekly reports admin: their filters, and a guard
against hand-made requests.

Each filter ignores a value it does not offer: a hand-made query string must
not reach the database as a lookup it cannot take.
"""

import re

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpResponseRedirect

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
    """How the report was last turned on or off; "never changed" also covers
    the domains that have no subscription row."""

    title = "last change"
    parameter_name = "changed_through"

    def lookups(self, request, model_admin):
        return [
            (value, "never changed" if value == Subscription.Source.DEFAULT else label)
            for value, label in Subscription.Source.choices
        ]

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


class MalformedRequestMixin:
    """Turn two hand-made requests away that Django's admin would answer
    with a server error: an action whose selection names no possible primary
    key, and a list filter value holding a NUL character, which PostgreSQL
    refuses in any query.
    """

    def get_changelist_instance(self, request):
        query = (key + "".join(values) for key, values in request.GET.lists())
        if any("\x00" in text for text in query):
            raise IncorrectLookupParameters("A filter value holds a NUL character.")
        return super().get_changelist_instance(request)

    def response_action(self, request, queryset):
        selected = request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)
        try:
            for value in selected:
                self.opts.pk.to_python(value)
        except ValidationError:
            self.message_user(
                request, "The selection names no known item.", messages.ERROR
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)
