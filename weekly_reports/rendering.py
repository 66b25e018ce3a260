"""Turning a report into the subject, text and HTML of a message.

The EmailTemplate is read from the database at the start of every run, never
from post_office's cache, so an edit in the admin is what the next run sends.
Issue text reaches the template only as context values: the template engine
never parses it, however many braces it holds.
"""

import datetime

import css_inline
from django.conf import settings
from django.core import signing
from django.template import Context, Engine, TemplateSyntaxError, engines
from django.urls import reverse
from post_office.models import EmailTemplate

from . import conf
from .exceptions import TemplateProblem
from .stats import remove_control_characters

UNSUBSCRIBE_SALT = "weekly_reports.unsubscribe"

_PARTS = [
    ("subject", "subject"),
    ("content", "text content"),
    ("html_content", "HTML content"),
]


def _debug_engine():
    """An engine like the project's, but one whose syntax errors carry the
    line number, so that the message can name it."""
    project_engine = engines["django"].engine
    return Engine(debug=True, libraries=project_engine.libraries)


def compile_source(source, template_name, part_label):
    """Compile one part; raise TemplateProblem naming template and line."""
    try:
        return _debug_engine().from_string(source)
    except TemplateSyntaxError as error:
        line = getattr(error, "template_debug", {}).get("line", "?")
        raise TemplateProblem(
            f"Email template {template_name!r} has an error in its {part_label} "
            f"on line {line}: {_one_line(error)}"
        ) from error


def _one_line(error):
    # Some of Django's messages span lines (an unknown tag library lists the
    # known ones one per line), but a command's error must stay one line.
    return " ".join(str(error).split())


class ReportTemplate:
    """The compiled subject, text and HTML parts of the report template."""

    def __init__(self, name, subject, text, html, email_template=None):
        self.name = name
        self.email_template = email_template
        self.subject = compile_source(subject, name, "subject")
        self.text = compile_source(text, name, "text content")
        self.html = compile_source(html, name, "HTML content") if html.strip() else None
        self._inliner = css_inline.CSSInliner(load_remote_stylesheets=False)

    @classmethod
    def load(cls, name=None):
        """Read and compile the template named by the settings."""
        name = name or conf.get("TEMPLATE_NAME")
        email_template = (
            EmailTemplate.objects.filter(name=name, language="", default_template=None)
            .order_by("pk")
            .first()
        )
        if email_template is None:
            raise TemplateProblem(
                f"Email template {name!r} does not exist; run 'python manage.py "
                f"migrate weekly_reports' to create the default one."
            )
        return cls.from_email_template(email_template)

    @classmethod
    def from_email_template(cls, email_template):
        return cls(
            email_template.name,
            email_template.subject,
            email_template.content,
            email_template.html_content,
            email_template=email_template,
        )

    def render(self, context):
        """Return ``(subject, text, html)`` for one report's context."""
        # Localizing each of a report's hundred-odd values took a third of
        # the rendering time. Its integers only look different localized
        # when the site asks for thousand separators; dates and other values
        # are formatted by filters, which localize either way.
        localize = None if settings.USE_THOUSAND_SEPARATOR else False
        plain = Context(context, autoescape=False, use_l10n=localize)
        # A subject is one header line: no line breaks, and no control
        # characters that a terminal or a mail client would act on.
        subject = self.subject.render(plain)
        subject = " ".join(remove_control_characters(subject).split())
        text = self.text.render(plain)

        html = ""
        if self.html is not None:
            rendered = self.html.render(
                Context(context, autoescape=True, use_l10n=localize)
            )
            html = self._inliner.inline(rendered)
        return subject, text, html

    def check_renders(self, context):
        """Render once with a sample context, so that a template that fails
        only at render time stops the run before anything is queued."""
        try:
            self.render(context)
        except Exception as error:
            raise TemplateProblem(
                f"Email template {self.name!r} fails to render: {_one_line(error)}"
            ) from error


def unsubscribe_token(domain_pk):
    return signing.Signer(salt=UNSUBSCRIBE_SALT).sign(str(domain_pk))


def read_unsubscribe_token(token):
    """Return the domain pk a token names; raise ``signing.BadSignature``."""
    value = signing.Signer(salt=UNSUBSCRIBE_SALT).unsign(token)
    if not value.isdigit():
        raise signing.BadSignature("The token does not name a domain.")
    return int(value)


def unsubscribe_url(domain_pk):
    path = reverse("weekly_reports:unsubscribe", args=[unsubscribe_token(domain_pk)])
    return conf.site_url() + path


def list_id():
    return f"{conf.get('LIST_ID_NAME')} <{conf.get('LIST_ID_DOMAIN')}>"


def headers_for(unsubscribe):
    """Mailing-list headers, given the report's ``unsubscribe_url``: RFC 2369
    and 8058 for one-click unsubscribe, RFC 3834 so that auto-responders
    stay quiet, RFC 2919 for filtering."""
    return {
        "List-Unsubscribe": f"<{unsubscribe}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Auto-Submitted": "auto-generated",
        "List-Id": list_id(),
    }


def context_for(report):
    """The template context of one report: plain values only."""
    figures = report.figures
    return {
        "organization": report.organization,
        "domain": report.domain_name,
        "week": str(report.week),
        "week_start": report.week.start.date(),
        "week_end": (report.week.end - datetime.timedelta(days=1)).date(),
        "open": figures.open,
        "closed": figures.closed,
        "total": figures.total,
        "opened_this_week": figures.opened_this_week,
        "closed_this_week": figures.closed_this_week,
        "recent": [issue.as_dict() for issue in figures.recent],
        "site_url": conf.site_url(),
        "unsubscribe_url": unsubscribe_url(report.domain_pk),
    }
