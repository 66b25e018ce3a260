"""One domain's report for one week, rendered as it would be mailed.

The admin's template preview and the staff preview page build the report
from the same pieces as ``run_weekly`` (the figures, the Report and its
rules, the rendering and the headers); tests/test_preview.py compares a
preview with the message a run delivers, so the two cannot drift apart.
"""

from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.utils import timezone
from post_office import settings as post_office_settings

from .models import Delivery
from .rendering import context_for, headers_for, unsubscribe_url
from .runner import WeeklyRun

# Pages that show a rendered report. Its text comes from anyone who filed an
# issue and its HTML from an editor: no inline script runs, the frame that
# shows the HTML is sandboxed and inherits this policy, and images load as in
# a mail client. frame-ancestors is left to X-Frame-Options, because a
# srcdoc frame inherits it too and would then refuse to show its own page.
PREVIEW_CSP = (
    "default-src 'self'; img-src 'self' data: https: http:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'"
)

# A test message goes to the admin, not to the domain: a mail client must
# not offer its one-click unsubscribe, which would turn the domain off.
_HEADERS_LEFT_OUT_OF_TESTS = ("List-Unsubscribe", "List-Unsubscribe-Post")


@dataclass
class RenderedReport:
    """The parts and headers of one domain's message, and its fate."""

    report: object
    subject: str
    text: str
    html: str
    headers: dict = field(default_factory=dict)

    @property
    def recipients(self):
        return self.report.recipients

    @property
    def skip_reason(self):
        return self.report.skip_reason()


def build_report(domain_name, week):
    """Return the Report ``run_weekly`` would compute for this domain and
    week, or None when no domain has that name."""
    return WeeklyRun(week=week, dry_run=True).report_for(domain_name)


def render_report(template, report):
    """Render a Report with a compiled ReportTemplate."""
    context = context_for(report)
    subject, text, html = template.render(context)
    headers = {
        "From": settings.DEFAULT_FROM_EMAIL,
        "To": ", ".join(report.recipients),
        "Subject": subject,
        **headers_for(context["unsubscribe_url"]),
    }
    return RenderedReport(report, subject, text, html, headers)


def ledger_note(report):
    """What the ledger says of this report's domain and week, as a
    sentence, or None when no run wrote a row."""
    row = Delivery.objects.filter(
        domain_id=report.domain_pk, week=str(report.week)
    ).first()
    if row is None:
        return None

    note = f"The ledger has this report as {row.status}"
    if row.recipients:
        note += f" to {row.recipients}"
    if row.reason or row.error:
        note += f": {row.reason or row.error}"
    updated = timezone.localtime(row.updated)
    return f"{note}, last changed {updated:%Y-%m-%d %H:%M}."


def send_test(rendered, address):
    """Mail a rendered report to one address now, through the backend that
    delivers the reports; let the backend's error propagate."""
    list_headers = headers_for(unsubscribe_url(rendered.report.domain_pk))
    headers = {
        name: value
        for name, value in list_headers.items()
        if name not in _HEADERS_LEFT_OUT_OF_TESTS
    }
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[address],
        headers=headers,
    )
    if rendered.html:
        message.attach_alternative(rendered.html, "text/html")

    backend = post_office_settings.get_backend(
        post_office_settings.get_default_mailer()
    )
    with get_connection(backend) as connection:
        connection.send_messages([message])
