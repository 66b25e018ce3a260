"""One-click unsubscribe (RFC 8058) and its confirmation pages.

A mail client's one-click POST carries no session and no CSRF token, so these
views are exempt from CSRF: the signed token in the URL is the credential. A
GET only shows a confirmation button, because link scanners follow every
link in a message and must not unsubscribe anyone.
"""

import logging

from django.core import signing
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import conf
from .models import Subscription
from .rendering import read_unsubscribe_token

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
