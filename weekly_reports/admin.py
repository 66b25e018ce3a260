"""The weekly reports in the Django admin.

- Weekly reports › Domains: every domain of the host with its report state,
  a toggle per row, bulk actions, filters and further recipients.
- Weekly reports › Report deliveries: the ledger, read-only, with a "send
  again" action.
- post_office's Email and EmailTemplate admins are replaced by subclasses,
  in admin_mail.py.

Every custom URL goes through ``admin_site.admin_view`` (login and staff
check) and changes state on POST only.
"""

from collections import defaultdict

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import BooleanField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme

from . import conf
from .admin_lists import (
    ChangedThroughFilter,
    EmailFilter,
    LastReportFilter,
    MalformedRequestMixin,
    ReportStateFilter,
    WeekFilter,
    email_state,
)

# The replacements of post_office's admins register themselves on import.
from .admin_mail import EmailAdmin, EmailTemplateAdmin  # noqa: F401
from .exceptions import ReportError
from .forms import SubscriptionForm
from .models import Delivery, ReportDomain, Subscription
from .runner import WeeklyRun
from .weeks import IsoWeek


def domains(count):
    return f"{count} domain{'' if count == 1 else 's'}"


def set_report_state(queryset, subscribed, source=Subscription.Source.ADMIN):
    """Turn the report on or off for these domains; return how many changed.

    A domain whose report is already in that state keeps its record of who
    set it, and a domain nobody ever turned on or off gets its row only when
    its state changes.
    """
    changed = 0
    default = conf.get("SUBSCRIBED_BY_DEFAULT")
    with transaction.atomic():
        for pk, report_on in queryset.values_list("pk", "report_on"):
            if report_on == subscribed:
                continue
            subscription, _ = Subscription.objects.get_or_create(
                domain_id=pk, defaults={"is_subscribed": default}
            )
            changed += subscription.set_subscribed(subscribed, source)
    return changed


class SubscriptionInline(admin.StackedInline):
    """The domain's report state and further recipients.

    One form always shows; it is saved only when changed, so a domain that
    nobody turns on or off keeps following ``SUBSCRIBED_BY_DEFAULT``.
    """

    model = Subscription
    form = SubscriptionForm
    fields = ["is_subscribed", "extra_recipients", "last_change"]
    readonly_fields = ["last_change"]
    can_delete = False
    extra = 0
    min_num = 1
    max_num = 1
    verbose_name = "weekly report"
    verbose_name_plural = "weekly report"

    # One permission, "Can change domain" of this app, lets staff turn
    # reports on and off both in the list and here.
    def _has_domain_permission(self, request, action):
        opts = self.parent_model._meta
        codename = get_permission_codename(action, opts)
        return request.user.has_perm(f"{opts.app_label}.{codename}")

    def has_add_permission(self, request, obj=None):
        return self._has_domain_permission(request, "change")

    def has_change_permission(self, request, obj=None):
        return self._has_domain_permission(request, "change")

    def has_view_permission(self, request, obj=None):
        return any(
            self._has_domain_permission(request, action)
            for action in ("view", "change")
        )

    @admin.display(description="last change")
    def last_change(self, obj):
        return describe_change(obj if obj.pk else None)


def describe_change(subscription):
    """Through what and when the report was last turned on or off, or
    "never"."""
    if subscription is None or subscription.changed_by == Subscription.Source.DEFAULT:
        return "never"
    moment = timezone.localtime(subscription.changed_at)
    return f"{subscription.get_changed_by_display()}, {moment:%Y-%m-%d %H:%M}"


@admin.register(ReportDomain)
class ReportDomainAdmin(MalformedRequestMixin, admin.ModelAdmin):
    """Every domain of the host, with its weekly report state.

    The host's own domain admin stays as it is; this list is a proxy of the
    same model, so it covers every domain, including the ones nobody ever
    turned on or off, without a row per domain having to exist first.
    """

    list_display = [
        "name",
        "organization_name",
        "email_address",
        "report_state",
        "changed",
        "last_report",
    ]
    list_filter = [
        ReportStateFilter,
        EmailFilter,
        LastReportFilter,
        ChangedThroughFilter,
    ]
    search_fields = ["name", "organization__name"]
    actions = ["turn_report_on", "turn_report_off"]
    fields = [
        "name",
        "organization_name",
        "email_address",
        "is_active",
        "report_recipients",
        "preview_link",
    ]
    readonly_fields = fields
    inlines = [SubscriptionInline]

    class Media:
        css = {"all": ["weekly_reports/admin.css"]}

    def get_queryset(self, request):
        latest = Delivery.objects.filter(domain=OuterRef("pk")).order_by("-week")
        default = Value(conf.get("SUBSCRIBED_BY_DEFAULT"), output_field=BooleanField())
        return (
            super()
            .get_queryset(request)
            .select_related("organization", "weekly_report_subscription")
            .annotate(
                report_on=Coalesce(
                    "weekly_report_subscription__is_subscribed", default
                ),
                last_week=Subquery(latest.values("week")[:1]),
                last_status=Subquery(latest.values("status")[:1]),
            )
        )

    def has_add_permission(self, request):
        # Domains are added in the host's own admin.
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_list_display(self, request):
        # The toggle posts the list's own form, which exists only for users
        # who may run the list's actions.
        if self.has_change_permission(request):
            return [
                "report_toggle" if column == "report_state" else column
                for column in self.list_display
            ]
        return self.list_display

    def get_urls(self):
        return [
            path(
                "<path:object_id>/report/",
                self.admin_site.admin_view(self.toggle_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_toggle",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="organization", ordering="organization__name")
    def organization_name(self, obj):
        return obj.organization.name if obj.organization_id else "-"

    @admin.display(description="email", ordering="email")
    def email_address(self, obj):
        state = email_state(obj.email)
        if state == "valid":
            address = obj.email.strip()
        else:
            address = format_html(
                '<span class="weekly-report-problem">{}</span> {}',
                state,
                obj.email or "",
            )

        subscription = self._subscription(obj)
        extras = len(subscription.extra_recipients.split()) if subscription else 0
        if extras:
            return format_html(
                '{} <span class="weekly-report-extras">+{} more</span>',
                address,
                extras,
            )
        return address

    @admin.display(description="report", ordering="report_on", boolean=True)
    def report_state(self, obj):
        return obj.report_on

    @admin.display(description="report", ordering="report_on")
    def report_toggle(self, obj):
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_toggle",
            args=[obj.pk],
        )
        state, turn_to, title = (
            ("on", "off", "Turn the report off")
            if obj.report_on
            else ("off", "on", "Turn the report on")
        )
        # A button of the changelist's own form: it carries the form's CSRF
        # token, and formaction sends it to this domain's toggle URL.
        return format_html(
            '<button type="submit" class="weekly-report-toggle is-{}" '
            'formaction="{}" name="report" value="{}" title="{}" '
            'aria-label="{}: {}">{}</button>',
            state,
            url,
            turn_to,
            title,
            title,
            obj.name,
            state,
        )

    @admin.display(
        description="last change",
        ordering="weekly_report_subscription__changed_at",
    )
    def changed(self, obj):
        return describe_change(self._subscription(obj))

    @admin.display(description="last report", ordering="last_week")
    def last_report(self, obj):
        if obj.last_week is None:
            return "never"
        url = reverse("admin:weekly_reports_delivery_changelist")
        return format_html(
            '<a href="{}?domain__id__exact={}">{}: {}</a>',
            url,
            obj.pk,
            obj.last_week,
            obj.last_status,
        )

    @admin.display(description="recipients of the next report")
    def report_recipients(self, obj):
        subscription = self._subscription(obj)
        extras = subscription.extra_recipients.split() if subscription else []
        own = (obj.email or "").strip()
        addresses = ([own] if email_state(own) == "valid" else []) + extras
        return format_html_join("", "<div>{}</div>", ((a,) for a in addresses))

    @admin.display(description="preview")
    def preview_link(self, obj):
        url = reverse("weekly_reports:preview", args=[obj.name])
        return format_html('<a href="{}">Last week\'s report as mailed</a>', url)

    @staticmethod
    def _subscription(obj):
        return getattr(obj, "weekly_report_subscription", None)

    def save_model(self, request, obj, form, change):
        # Every domain field here is read-only: the host's admin edits them.
        # Saving would only touch the host's ``modified`` column.
        pass

    def save_formset(self, request, form, formset, change):
        for inline_form in formset.forms:
            if "is_subscribed" in inline_form.changed_data:
                inline_form.instance.changed_by = Subscription.Source.ADMIN
                inline_form.instance.changed_at = timezone.now()
        formset.save()

    def toggle_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])

        wanted = request.POST.get("report")
        if wanted not in ("on", "off"):
            return HttpResponseRedirect(self._changelist_url(request))
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"No domain has the id {object_id!r}.")
        if not self.has_change_permission(request, obj):
            raise PermissionDenied

        queryset = self.get_queryset(request).filter(pk=obj.pk)
        changed = set_report_state(queryset, wanted == "on")
        self.log_change(request, obj, f"Turned the weekly report {wanted}.")
        if changed:
            self.message_user(
                request,
                f"The weekly report for {obj.name} is now {wanted}.",
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request, f"The weekly report for {obj.name} was already {wanted}."
            )
        return HttpResponseRedirect(self._changelist_url(request))

    def _changelist_url(self, request):
        """The list the toggle was pressed in, with its filters, or the
        plain list."""
        changelist = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"
        )
        referer = request.headers.get("referer", "")
        same_site = url_has_allowed_host_and_scheme(
            referer,
            allowed_hosts={request.get_host()},
            require_https=request.is_secure(),
        )
        if same_site and changelist in referer:
            return referer
        return changelist

    @admin.action(
        description="Turn the report on for the selected domains",
        permissions=["change"],
    )
    def turn_report_on(self, request, queryset):
        self._turn(request, queryset, subscribed=True)

    @admin.action(
        description="Turn the report off for the selected domains",
        permissions=["change"],
    )
    def turn_report_off(self, request, queryset):
        self._turn(request, queryset, subscribed=False)

    def _turn(self, request, queryset, subscribed):
        selected = queryset.count()
        changed = set_report_state(queryset, subscribed)
        state = "on" if subscribed else "off"
        message = f"Turned the report {state} for {domains(changed)}"
        if selected != changed:
            message += f"; {domains(selected - changed)} had it {state} already"
        self.message_user(request, message + ".", messages.SUCCESS)


@admin.register(Delivery)
class DeliveryAdmin(MalformedRequestMixin, admin.ModelAdmin):
    """The ledger, read-only: it is the record of what went out."""

    list_display = [
        "week",
        "domain_link",
        "recipients",
        "status",
        "reason_or_error",
        "message_links",
        "updated",
    ]
    list_filter = [WeekFilter, "status", "reason"]
    search_fields = ["domain_name", "recipients"]
    date_hierarchy = "created"
    ordering = ["-week", "domain_name"]
    actions = ["send_again"]
    fields = [
        "week",
        "domain_link",
        "recipients",
        "status",
        "reason",
        "error",
        "message_links",
        "created",
        "updated",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("emails")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_send_permission(self, request):
        """Whether the user may send reports again: the model's change
        permission, which the read-only pages never use otherwise."""
        return request.user.has_perm(f"{self.opts.app_label}.change_delivery")

    @admin.display(description="domain", ordering="domain_name")
    def domain_link(self, obj):
        if obj.domain_id is None:
            return format_html("{} <small>(deleted)</small>", obj.domain_name)
        url = reverse("admin:weekly_reports_reportdomain_change", args=[obj.domain_id])
        return format_html('<a href="{}">{}</a>', url, obj.domain_name)

    @admin.display(description="skip reason or error")
    def reason_or_error(self, obj):
        return obj.reason or obj.error or ""

    @admin.display(description="messages")
    def message_links(self, obj):
        emails = sorted(obj.emails.all(), key=lambda email: email.pk)
        links = (
            (
                reverse("admin:post_office_email_change", args=[email.pk]),
                ", ".join(email.to),
                email.get_status_display() if email.status is not None else "",
            )
            for email in emails
        )
        return format_html_join("", '<div><a href="{}">{}</a> {}</div>', links)

    @admin.action(
        description="Send the selected reports again",
        permissions=["send"],
    )
    def send_again(self, request, queryset):
        rows = list(queryset.select_related("domain").order_by("week", "domain_name"))
        if request.POST.get("confirmed") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Send these reports again?",
                "opts": self.opts,
                "rows": rows,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/weekly_reports/delivery/send_again.html", context
            )

        names_by_week = defaultdict(list)
        for row in rows:
            if row.domain_id is None:
                self.message_user(
                    request,
                    f"Not sent again: {row.domain_name} was deleted.",
                    messages.WARNING,
                )
            else:
                names_by_week[row.week].append(row.domain.name)

        for week, names in names_by_week.items():
            self._send_week_again(request, week, names)
        return None

    def _send_week_again(self, request, week, names):
        try:
            run = WeeklyRun(week=IsoWeek.parse(week), domain_names=names, force=True)
            summary = run.execute()
        except ReportError as error:
            self.message_user(request, f"Nothing sent again: {error}", messages.ERROR)
            return

        failed = summary.failed or summary.deferred
        self.message_user(
            request,
            summary.line() + ".",
            messages.ERROR if failed else messages.SUCCESS,
        )
