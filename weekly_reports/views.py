"""One-click unsubscribe (RFC 8058), its confirmation pages, and the staff
preview of a domain's report.

A mail client's one-click POST carries no session and no CSRF token, so the
unsubscribe views are exempt from CSRF: the signed token in the URL is the
credential. A GET only shows a confirmation button, because link scanners
follow every link in a message and must not unsubscribe anyone.
"""

import logging

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core import signing
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import conf
from .exceptions import ReportError
from .models import Subscription
from .preview import PREVIEW_CSP, build_report, ledger_note, render_report
from .rendering import ReportTemplate, read_unsubscribe_token
from .weeks import IsoWeek

logger = logging.getLogger(__name__)


def _domain_for(token):
    """The domain a token names, or None for a forged, damaged or stale one."""
    try:
        domain_pk = read_unsubscribe_token(token)
    except signing.BadSignature:
        return None
    return conf.get_domain_model().objects.filter(pk=domain_pk).first()


def _invalid(request):
    return render(request, "weekly_reports/link_invalid.html", status=400)


def _change(request, token, subscribed, source, page):
    domain = _domain_for(token)
    if domain is None:
        return _invalid(request)

    if request.method == "POST":
        subscription, _ = Subscription.objects.get_or_create(
            domain=domain,
            defaults={"is_subscribed": conf.get("SUBSCRIBED_BY_DEFAULT")},
        )
        if subscription.set_subscribed(subscribed, source):
            logger.info(
                "%s the weekly report for %s through the link.",
                "Resubscribed" if subscribed else "Unsubscribed",
                domain,
            )
        page += "_done"
    else:
        page += "_confirm"

    context = {"domain": domain, "token": token}
    return render(request, f"weekly_reports/{page}.html", context)


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token):
    return _change(
        request,
        token,
        subscribed=False,
        source=Subscription.Source.UNSUBSCRIBE_LINK,
        page="unsubscribe",
    )


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def resubscribe(request, token):
    return _change(
        request,
        token,
        subscribed=True,
        source=Subscription.Source.RESUBSCRIBE_LINK,
        page="resubscribe",
    )


def _neighbour(week, step):
    """The week before or after, or None past the calendar's ends."""
    try:
        return str(step(week))
    except (OverflowError, ValueError, ReportError):
        return None


@staff_member_required
@require_http_methods(["GET", "HEAD"])
def preview(request, domain):
    """A domain's report of one week, exactly as ``run_weekly`` would mail
    it with the saved template."""
    week_text = request.GET.get("week", "").strip()
    try:
        week = IsoWeek.parse(week_text) if week_text else IsoWeek.last_complete()
    except ReportError:
        context = {
            **admin.site.each_context(request),
            "title": "Preview",
            "week": week_text,
            "problem": f"{week_text!r} is not an ISO week such as 2026-W48.",
        }
        return _preview_page(request, context, status=400)

    # PostgreSQL refuses a NUL character in a query; no name holds one.
    report = build_report(domain, week) if "\x00" not in domain else None
    if report is None:
        raise Http404(f"No domain is named {domain!r}.")

    context = {
        **admin.site.each_context(request),
        "title": f"{report.domain_name}: the report of {week}",
        "report": report,
        "week": str(week),
        "previous_week": _neighbour(week, IsoWeek.previous),
        "next_week": _neighbour(week, IsoWeek.next),
        "ledger_note": ledger_note(report),
    }
    try:
        context["rendered"] = render_report(ReportTemplate.load(), report)
    except ReportError as problem:
        context["problem"] = str(problem)
    return _preview_page(request, context)


def _preview_page(request, context, status=200):
    response = render(request, "weekly_reports/preview.html", context, status=status)
    response["Content-Security-Policy"] = PREVIEW_CSP
    return response
