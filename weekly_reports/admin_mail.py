"""post_office's Email and EmailTemplate admins, replaced by subclasses.

- The Email admin resends a message on a POST alone; post_office's resent it
  on a plain GET, which a prefetching browser or a crawler following a
  shared link could trigger. Its action says what it did.
- The EmailTemplate admin, on the weekly report template, previews the form
  as it stands (saved or not) for a chosen domain and week, mails that
  preview to the editor, refuses templates that do not compile or render,
  naming the line, clears post_office's cached copies on save, and restores
  the shipped default. Its change form loads nothing from a CDN, where
  post_office's loads CodeMirror.

Every custom URL goes through ``admin_site.admin_view`` and changes state on
POST only.
"""

import logging

# post_office registers its admins when its admin module is imported;
# importing it first lets them be unregistered here, whichever app comes
# first in INSTALLED_APPS.
from post_office import admin as post_office_admin  # isort: skip
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.views.decorators.clickjacking import xframe_options_sameorigin
from post_office.models import STATUS, Email, EmailTemplate

from . import conf
from .admin_lists import MalformedRequestMixin
from .email_template import forget_cached, is_shipped_default, restore_shipped_default
from .exceptions import TemplateProblem
from .forms import TEMPLATE_PARTS, EmailTemplateForm, PreviewForm
from .preview import (
    PREVIEW_CSP,
    build_report,
    render_report,
    send_test,
)
from .rendering import ReportTemplate
from .reports import Report
from .runner import settle
from .weeks import IsoWeek

logger = logging.getLogger(__name__)

# Domain names offered in the preview's domain field, at most.
PREVIEW_DOMAIN_CHOICES = 500


admin.site.unregister(Email)


@admin.register(Email)
class EmailAdmin(MalformedRequestMixin, post_office_admin.EmailAdmin):
    """post_office's Email admin, except that a message is resent by a POST
    alone: its own admin resent on a plain GET, which a prefetching browser
    or a crawler on a shared link could trigger."""

    change_form_template = "admin/weekly_reports/email/change_form.html"
    actions = ["requeue_selected"]

    class Media:
        css = {"all": ["weekly_reports/admin.css"]}

    @admin.display(description="HTML body")
    def render_html_body(self, instance):
        """The HTML part in a sandboxed frame, beside post_office's link to
        its full-page preview: put into the page itself, as post_office does,
        the message's styles restyled the admin around it."""
        html = self._get_html_body(instance)
        if not html:
            return None
        return format_html(
            '<p><a href="{}" target="_blank" rel="noopener" class="button">{}</a></p>'
            '<iframe class="weekly-report-html" title="{}" '
            'sandbox="allow-popups allow-popups-to-escape-sandbox" '
            'srcdoc="{}"></iframe>',
            reverse("admin:post_office_email_preview", args=[instance.pk]),
            "Preview",
            "HTML part",
            html,
        )

    def resend(self, request, pk):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])

        instance = self._get_object_or_deny(request, pk, "change")
        status = instance.dispatch()
        settle(instance.weekly_report_deliveries.all())
        if status == STATUS.sent:
            self.message_user(request, "The message was sent again.", messages.SUCCESS)
        else:
            last = instance.logs.order_by("-date", "-pk").first()
            reason = f": {last.message}" if last and last.message else "."
            self.message_user(
                request, f"Sending the message again failed{reason}", messages.ERROR
            )
        return HttpResponseRedirect(
            reverse("admin:post_office_email_change", args=[instance.pk])
        )

    @admin.action(description="Requeue the selected emails", permissions=["change"])
    def requeue_selected(self, request, queryset):
        count = queryset.update(status=STATUS.queued)
        self.message_user(
            request,
            f"Requeued {count} email{'' if count == 1 else 's'} for the next "
            "send_queued_mail.",
            messages.SUCCESS,
        )


admin.site.unregister(EmailTemplate)


@admin.register(EmailTemplate)
class EmailTemplateAdmin(MalformedRequestMixin, post_office_admin.EmailTemplateAdmin):
    """post_office's template admin with, on the weekly report template, a
    preview of the form as it stands, a test mail to oneself and a way back
    to the shipped default."""

    form = EmailTemplateForm
    change_form_template = "admin/weekly_reports/emailtemplate/change_form.html"

    class Media:
        css = {"all": ["weekly_reports/admin.css"]}

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/preview/",
                wrap(xframe_options_sameorigin(self.preview_view)),
                name="weekly_reports_template_preview",
            ),
            path(
                "<path:object_id>/send-test/",
                wrap(xframe_options_sameorigin(self.send_test_view)),
                name="weekly_reports_template_send_test",
            ),
            path(
                "<path:object_id>/restore-default/",
                wrap(self.restore_view),
                name="weekly_reports_template_restore",
            ),
            *super().get_urls(),
        ]

    @staticmethod
    def is_report_template(obj):
        return (
            obj is not None
            and obj.name == conf.get("TEMPLATE_NAME")
            and not obj.language
            and obj.default_template_id is None
        )

    def has_delete_permission(self, request, obj=None):
        # Every run reads this template; "Restore the shipped default" is
        # the way back from an edit gone wrong.
        if self.is_report_template(obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_inline_instances(self, request, obj=None):
        # run_weekly reads the default-language template alone; translations
        # of it would be edited here and never sent.
        if self.is_report_template(obj):
            return []
        return super().get_inline_instances(request, obj)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        forget_cached(obj.name, *([form.initial["name"]] if change else []))

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        forget_cached(obj.name)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if self.is_report_template(obj):
            context.update(self._preview_controls(obj))
        return super().change_view(request, object_id, form_url, context)

    def _preview_controls(self, obj):
        Domain = conf.get_domain_model()
        names = list(
            Domain.objects.order_by("name").values_list("name", flat=True)[
                :PREVIEW_DOMAIN_CHOICES
            ]
        )
        first_recipient = (
            Domain.objects.filter(is_active=True, email__contains="@")
            .order_by("name")
            .values_list("name", flat=True)
            .first()
        )
        initial = {
            "domain": first_recipient or (names[0] if names else ""),
            "week": str(IsoWeek.last_complete()),
        }
        preview_form = PreviewForm(prefix="preview", initial=initial)
        preview_query = urlencode(
            {preview_form.add_prefix(key): value for key, value in initial.items()}
        )
        return {
            "preview_form": preview_form,
            "preview_domains": names,
            "preview_url": reverse(
                "admin:weekly_reports_template_preview", args=[obj.pk]
            ),
            "preview_query": preview_query,
            "send_test_url": reverse(
                "admin:weekly_reports_template_send_test", args=[obj.pk]
            ),
            "restore_url": reverse(
                "admin:weekly_reports_template_restore", args=[obj.pk]
            ),
            "is_shipped_default": is_shipped_default(obj),
        }

    def _report_template_or_404(self, request, object_id, permission):
        obj = self.get_object(request, unquote(object_id))
        if not self.is_report_template(obj):
            raise Http404("Only the weekly report template has a preview.")
        if not getattr(self, f"has_{permission}_permission")(request, obj):
            raise PermissionDenied
        return obj

    def preview_view(self, request, object_id):
        """The template as it stands in the posted form (or as saved, on a
        GET), rendered for the chosen domain and week."""
        obj = self._report_template_or_404(request, object_id, "view")
        if request.method == "POST":
            rendered, status, problem = self._render_preview(obj, request.POST)
        else:
            rendered, status, problem = self._render_preview(
                obj, request.GET, saved=True
            )
        return self._preview_response(request, obj, rendered, problem, status)

    def send_test_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])

        obj = self._report_template_or_404(request, object_id, "view")
        rendered, status, problem = self._render_preview(obj, request.POST)
        address = request.user.email
        if rendered is None:
            self.message_user(
                request, "Nothing was sent: the preview failed.", messages.ERROR
            )
        elif not address:
            self.message_user(
                request,
                "Nothing was sent: your user account has no email address.",
                messages.ERROR,
            )
        else:
            self._send_test(request, rendered, address)
        return self._preview_response(request, obj, rendered, problem, status)

    def _send_test(self, request, rendered, address):
        report = rendered.report
        try:
            send_test(rendered, address)
        except Exception as error:
            # Whatever the mail backend raises is reported to the editor.
            logger.warning(
                "Sending a test report to %s failed.", address, exc_info=True
            )
            self.message_user(
                request,
                f"Sending the test to {address} failed: {error}",
                messages.ERROR,
            )
            return
        self.message_user(
            request,
            f"Sent this preview ({report.domain_name}, {report.week}) to {address}.",
            messages.SUCCESS,
        )

    def _render_preview(self, obj, data, saved=False):
        """Return ``(rendered report or None, HTTP status, problem)`` for the
        template parts in ``data``, or the saved ones."""
        preview_form = PreviewForm(data, prefix="preview")
        if not preview_form.is_valid():
            errors = " ".join(
                error for errors in preview_form.errors.values() for error in errors
            )
            return None, 400, f"The preview cannot be shown: {errors}"

        week = preview_form.cleaned_data["week"]
        name = preview_form.cleaned_data["domain"].strip()
        report = build_report(name, week) if name else Report.sample(week)
        if report is None:
            return None, 400, f"No domain is named {name!r}."

        parts = [
            getattr(obj, field) if saved else data.get(field, getattr(obj, field))
            for field in TEMPLATE_PARTS
        ]
        try:
            template = ReportTemplate(obj.name, *parts)
            return render_report(template, report), 200, None
        except TemplateProblem as problem:
            return None, 200, str(problem)
        except Exception as error:
            # The template is code an editor wrote; whatever fails while it
            # renders belongs on the page, not in a server error.
            return None, 200, f"The template fails to render: {error}"

    def _preview_response(self, request, obj, rendered, problem, status):
        context = {
            **self.admin_site.each_context(request),
            "title": "Preview",
            "opts": self.opts,
            "original": obj,
            "rendered": rendered,
            "problem": problem,
        }
        response = TemplateResponse(
            request,
            "admin/weekly_reports/emailtemplate/preview.html",
            context,
            status=status,
        )
        response["Content-Security-Policy"] = PREVIEW_CSP
        return response

    def restore_view(self, request, object_id):
        """GET asks; POST puts the shipped subject, text and HTML back."""
        obj = self._report_template_or_404(request, object_id, "change")
        change_url = reverse("admin:post_office_emailtemplate_change", args=[obj.pk])
        if request.method == "POST":
            restore_shipped_default(obj)
            self.log_change(request, obj, "Restored the shipped default.")
            self.message_user(
                request,
                f"Restored the shipped default of {obj.name}; the next run sends it.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(change_url)

        context = {
            **self.admin_site.each_context(request),
            "title": f"Restore the shipped default of {obj.name}?",
            "opts": self.opts,
            "original": obj,
            "change_url": change_url,
            "is_shipped_default": is_shipped_default(obj),
        }
        return TemplateResponse(
            request, "admin/weekly_reports/emailtemplate/restore_default.html", context
        )
