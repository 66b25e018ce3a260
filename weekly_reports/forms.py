"""Forms of the weekly reports admin."""

from django import forms
from django.core.exceptions import ValidationError
from post_office.admin import EmailTemplateAdminForm
from post_office.models import EmailTemplate

from . import conf
from .exceptions import ReportError, TemplateProblem
from .models import Subscription
from .rendering import ReportTemplate, compile_source, context_for
from .reports import Report, is_valid_address, parse_addresses, unique_addresses
from .weeks import IsoWeek

TEMPLATE_PARTS = {
    "subject": "subject",
    "content": "text content",
    "html_content": "HTML content",
}


def syntax_error(source, part_label):
    """The message for a part that does not compile, naming its line, or
    None when it compiles."""
    try:
        compile_source(source, "", part_label)
    except TemplateProblem as problem:
        cause = problem.__cause__
        line = getattr(cause, "template_debug", {}).get("line", "?")
        return f"Line {line}: {cause}"
    return None


class EmailTemplateForm(EmailTemplateAdminForm):
    """post_office's template form, refusing what the template engine or the
    weekly report would refuse, with the line of each syntax error."""

    def _clean_part(self, field_name):
        source = self.cleaned_data.get(field_name, "")
        problem = syntax_error(source, TEMPLATE_PARTS[field_name])
        if problem:
            raise ValidationError(problem, code="template_syntax")
        return source

    def clean_subject(self):
        return self._clean_part("subject")

    def clean_content(self):
        return self._clean_part("content")

    def clean_html_content(self):
        return self._clean_part("html_content")

    def clean_name(self):
        name = self.cleaned_data["name"]
        report_name = conf.get("TEMPLATE_NAME")
        if self.instance.pk and self.instance.name == report_name != name:
            raise ValidationError(
                "Every run sends the template named %(name)s; keep the name, or "
                "set WEEKLY_REPORTS['TEMPLATE_NAME'] to the new one first.",
                code="report_template_renamed",
                params={"name": report_name},
            )
        return name

    def clean(self):
        cleaned_data = super().clean()
        name = cleaned_data.get("name")
        parts = [cleaned_data.get(field) for field in TEMPLATE_PARTS]
        if name != conf.get("TEMPLATE_NAME") or any(part is None for part in parts):
            return cleaned_data

        # The unique constraint on (name, language, default template) lets
        # NULLs through, so a second template of this name would be allowed.
        others = EmailTemplate.objects.filter(
            name=name, language="", default_template=None
        ).exclude(pk=self.instance.pk)
        if not cleaned_data.get("language") and others.exists():
            raise ValidationError(
                "A template named %(name)s exists already; edit that one.",
                code="report_template_exists",
                params={"name": name},
            )

        # A template can compile and still fail when rendered, for example a
        # filter given a value it cannot take; the run would stop on it.
        try:
            template = ReportTemplate(name, *parts)
            template.check_renders(context_for(Report.sample(IsoWeek.last_complete())))
        except ReportError as problem:
            raise ValidationError(str(problem), code="template_render") from problem
        return cleaned_data


class SubscriptionForm(forms.ModelForm):
    """A domain's report state and its further recipients."""

    class Meta:
        model = Subscription
        fields = ["is_subscribed", "extra_recipients"]
        widgets = {"extra_recipients": forms.Textarea(attrs={"rows": 4})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            self.fields["is_subscribed"].initial = conf.get("SUBSCRIBED_BY_DEFAULT")

    def clean_extra_recipients(self):
        addresses = parse_addresses(self.cleaned_data["extra_recipients"])
        invalid = [address for address in addresses if not is_valid_address(address)]
        if invalid:
            raise ValidationError(
                "Not a valid email address: %(addresses)s.",
                code="invalid",
                params={"addresses": ", ".join(invalid)},
            )

        # The domain's own address gets the report anyway.
        own = self.instance.domain.email if self.instance.domain_id else None
        own = (own or "").strip().casefold()
        unique = [
            address
            for address in unique_addresses(addresses)
            if address.casefold() != own
        ]
        return "\n".join(unique)


class PreviewForm(forms.Form):
    """The domain and week a preview shows; no domain shows an imaginary
    one."""

    domain = forms.CharField(
        max_length=255,
        required=False,
        widget=forms.TextInput(
            attrs={
                "class": "vTextField",
                "list": "weekly-report-domains",
                "autocomplete": "off",
            }
        ),
    )
    week = forms.CharField(
        max_length=8,
        help_text="An ISO week, such as 2026-W48.",
        widget=forms.TextInput(attrs={"type": "week"}),
    )

    def clean_week(self):
        value = self.cleaned_data["week"]
        try:
            return IsoWeek.parse(value)
        except ReportError as error:
            raise ValidationError(
                "%(value)s is not an ISO week such as 2026-W48.",
                code="invalid",
                params={"value": value},
            ) from error
