"""Celery tasks, used when post_office's Celery integration is switched on
(``POST_OFFICE = {"CELERY_ENABLED": True}``).

run_weekly hands each batch of domains to ``queue_report_batch``; the worker
computes, claims and queues the batch exactly as a local run would, then
hands its mail out to ``deliver_emails`` in chunks. Delivery claims each
message under a row lock, so any number of workers on any number of hosts
send each message once (post_office's own lock file only covers one host).
"""

from celery import shared_task

from .delivery import deliver
from .models import Delivery
from .runner import WeeklyRun, settle
from .weeks import IsoWeek


@shared_task(acks_late=True)
def queue_report_batch(week, domain_pks, force=False):
    """Queue the reports of these domains for ``week``; return their JSON."""
    run = WeeklyRun(week=IsoWeek.parse(week), force=force)
    return [report.as_json() for report in run.process_domains(domain_pks)]


@shared_task(acks_late=True, ignore_result=True)
def deliver_emails(email_ids):
    """Deliver queued messages (a message another worker holds is skipped),
    then bring their reports' ledger rows up to date."""
    deliver(email_ids, held=True)
    settle(
        Delivery.objects.filter(
            emails__in=email_ids, status=Delivery.Status.QUEUED
        ).distinct()
    )
