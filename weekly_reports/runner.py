"""The weekly job: compute, claim, queue and deliver every domain's report.

Domains are read as one stream ordered by name, and their figures as two
more streams in the same order (see ``stats.FigureStream``), so the figures
of any number of domains cost three queries. The stream is cut into batches;
each batch is claimed and queued in one transaction together with its ledger
rows, then delivered, so memory stays flat however many domains there are.
"""

import datetime
import logging
import multiprocessing
from collections import defaultdict, deque
from contextlib import ExitStack
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Collate
from django.utils import timezone
from post_office import settings as post_office_settings
from post_office.models import PRIORITY, STATUS, Email, Log
from post_office.signals import email_queued

from . import conf
from .delivery import PENDING, DeliveryPool, deliver, sender_lock
from .exceptions import ReportError
from .models import Delivery
from .rendering import ReportTemplate, context_for, headers_for
from .reports import Reason, Report, parse_addresses
from .stats import Figures, FigureStream, compute_figures
from .weeks import IsoWeek

logger = logging.getLogger(__name__)

# post_office stores subjects in a column of this width.
_SUBJECT_WIDTH = 989
# Weeks named in the warning about missed runs, at most.
_MISSED_WEEKS_SHOWN = 5


@dataclass
class Summary:
    week: IsoWeek
    dry_run: bool = False
    queue_only: bool = False
    sent: int = 0
    queued: int = 0
    would_send: int = 0
    skipped: int = 0
    failed: int = 0
    deferred: int = 0
    already_sent: int = 0

    def count(self, report):
        if report.reason == Reason.ALREADY_SENT:
            self.already_sent += 1
        elif report.status == Delivery.Status.SKIPPED:
            self.skipped += 1
        elif report.status == "would_send":
            self.would_send += 1
        elif report.status == Delivery.Status.SENT:
            self.sent += 1
        elif report.status == Delivery.Status.FAILED:
            self.failed += 1
        elif self.queue_only:
            self.queued += 1
        else:
            self.deferred += 1

    @property
    def exit_status(self):
        return 1 if self.failed or self.deferred else 0

    def line(self):
        if self.dry_run:
            return (
                f"Weekly reports for {self.week} (dry run): {self.would_send} would "
                f"send, {self.skipped} skipped, {self.already_sent} already sent"
            )

        done = f"{self.queued} queued" if self.queue_only else f"{self.sent} sent"
        line = (
            f"Weekly reports for {self.week}: {done}, {self.skipped} skipped, "
            f"{self.failed} failed, {self.already_sent} already sent"
        )
        if self.deferred:
            line += f", {self.deferred} deferred"
        return line


class WeeklyRun:
    """One run of the weekly job over all domains or the named ones."""

    def __init__(
        self,
        week=None,
        domain_names=None,
        dry_run=False,
        force=False,
        queue_only=False,
    ):
        self.week = week or IsoWeek.last_complete()
        self.domain_names = sorted(set(domain_names or []))
        self.dry_run = dry_run
        self.force = force
        # With post_office's Celery integration on, workers compute, queue
        # and deliver each batch; this process only hands the batches out.
        self.celery = post_office_settings.get_celery_enabled() and not dry_run
        self.queue_only = queue_only or self.celery
        # Mail that a worker of this run delivers itself is held back from
        # other senders; mail left to send_queued_mail is not.
        self.hold = not queue_only
        self.Domain = conf.get_domain_model()
        self.batch_size = conf.get("BATCH_SIZE")
        self._lock_held = None
        self._delivery_pool = None

    def execute(self, on_report=None, on_batch=None):
        """Run the job; call ``on_report(report)`` for each domain in name
        order and ``on_batch(count)`` after each batch; return the Summary.

        Raises ReportError before anything is written when the arguments or
        the template are unusable.
        """
        self._check_week_has_ended()
        template = ReportTemplate.load()
        template.check_renders(_sample_context(self.week))
        self._check_domain_names()

        summary = Summary(self.week, dry_run=self.dry_run, queue_only=self.queue_only)
        logger.info(
            "Weekly reports for %s started%s.",
            self.week,
            " (dry run)" if self.dry_run else "",
        )
        self._warn_about_missed_weeks()
        if not self.dry_run:
            settle(
                Delivery.objects.filter(
                    week=str(self.week), status=Delivery.Status.QUEUED
                )
            )

        with ExitStack() as cleanup:
            self._take_sender_lock(cleanup)
            self._start_delivery_pool(cleanup)
            for reports in self._batches(template):
                for report in reports:
                    summary.count(report)
                    if on_report is not None:
                        on_report(report)
                if on_batch is not None:
                    on_batch(len(reports))

        logger.info("%s", summary.line())
        return summary

    def _take_sender_lock(self, cleanup):
        """Hold post_office's sender lock while this run delivers, so that
        send_queued_mail on this host waits its turn."""
        if self.dry_run or self.queue_only:
            return

        wait = conf.get("LOCK_WAIT")
        self._lock_held = cleanup.enter_context(sender_lock(wait))
        if not self._lock_held:
            logger.warning(
                "Another post_office sender held the lock for %s s; the queued "
                "reports are left to send_queued_mail.",
                wait,
            )

    def _start_delivery_pool(self, cleanup):
        """Fork the delivery processes now, before the streams open."""
        processes = conf.get("DELIVERY_PROCESSES")
        in_pool = conf.get("PROCESSES") > 1
        if self._lock_held and processes > 1 and not in_pool and not self.celery:
            self._delivery_pool = cleanup.enter_context(DeliveryPool(processes))

    def _batches(self, template):
        if self.celery:
            return self._hand_out_batches()

        processes = conf.get("PROCESSES")
        if processes > 1 and not self.dry_run:
            return self._process_in_pool(template, processes)
        return self._process_batches(template)

    def count_domains(self):
        return self._domains().count()

    def _check_week_has_ended(self):
        """A report of a week still under way would be incomplete, and its
        ledger rows would stop the real report as "already sent"."""
        if self.week.end > timezone.now():
            raise ReportError(
                f"--week {self.week} has not ended yet; the last complete week "
                f"is {IsoWeek.last_complete()}."
            )

    def _check_domain_names(self):
        if not self.domain_names:
            return

        known = set(
            self.Domain.objects.filter(name__in=self.domain_names).values_list(
                "name", flat=True
            )
        )
        unknown = [name for name in self.domain_names if name not in known]
        if unknown:
            raise ReportError(
                f"--domain names no known domain: {', '.join(map(repr, unknown))}."
            )

    def _warn_about_missed_weeks(self):
        """A week between the last one in the ledger and this one was never
        run, most likely because a cron run was missed."""
        last = (
            Delivery.objects.filter(week__lt=str(self.week))
            .order_by("-week")
            .values_list("week", flat=True)
            .first()
        )
        if last is None:
            return

        first_missed = IsoWeek.parse(last).next()
        count = (self.week.start.date() - first_missed.start.date()).days // 7
        missed = []
        week = first_missed
        while week < self.week and len(missed) < _MISSED_WEEKS_SHOWN:
            missed.append(str(week))
            week = week.next()
        if missed:
            shown = ", ".join(missed)
            more = count - len(missed)
            logger.warning(
                "No weekly report was ever sent for %s%s; run 'run_weekly --week "
                "WEEK' for each.",
                shown,
                f" and {more} more weeks" if more > 0 else "",
            )

    def _batches_with_figures(self):
        """Yield ``(batch, {domain_pk: Figures})`` in name order.

        On PostgreSQL the figures come from streams read alongside the
        domains (server-side cursors that outlive each batch's commit). Other
        databases cannot keep a read cursor open while other processes write,
        so there each batch is read and computed on its own.
        """
        if connection.vendor != "postgresql":
            for batch in self._domain_pages():
                pks = [row["pk"] for row in batch]
                yield batch, compute_figures(pks, self.week)
            return

        stream = FigureStream(self._domains(), self.week, self._sort_key("name"))
        for batch in self._domain_batches():
            yield batch, {row["pk"]: stream.figures_for(row["pk"]) for row in batch}

    def _process_batches(self, template):
        for batch, figures in self._batches_with_figures():
            yield self._process_batch(batch, template, figures)

    def _process_in_pool(self, template, processes):
        """Render, queue and deliver batches in forked worker processes,
        while this one streams the domains and their figures to them.

        At most two batches per worker are in flight, so memory stays flat,
        and the results come back in name order.
        """
        # A forked child must open its own database connection.
        connections.close_all()
        context = multiprocessing.get_context("fork")
        with context.Pool(processes) as pool:
            in_flight = deque()
            for batch, figures in self._batches_with_figures():
                in_flight.append(
                    pool.apply_async(
                        _process_in_worker, (self._worker_settings(), batch, figures)
                    )
                )
                if len(in_flight) >= 2 * processes:
                    yield in_flight.popleft().get()
            while in_flight:
                yield in_flight.popleft().get()

    def _worker_settings(self):
        return {
            "week": self.week,
            "force": self.force,
            "queue_only": self.queue_only,
            "lock_held": self._lock_held,
        }

    def _hand_out_batches(self):
        """Send each batch to a Celery worker, then collect the reports in
        name order, waiting for each batch in turn."""
        from .tasks import queue_report_batch

        pending = [
            queue_report_batch.delay(
                str(self.week), [row["pk"] for row in batch], self.force
            )
            for batch in self._domain_batches()
        ]
        timeout = conf.get("CELERY_BATCH_TIMEOUT")
        for result in pending:
            yield [
                Report.from_json(data, self.week)
                for data in result.get(timeout=timeout, disable_sync_subtasks=False)
            ]

    def report_for(self, domain_name):
        """The Report this run would compute for one domain, or None for an
        unknown name. For previews; nothing is written."""
        rows = list(self._domain_rows().filter(name=domain_name))
        if not rows:
            return None

        figures = compute_figures([rows[0]["pk"]], self.week)
        return self._make_reports(rows, figures)[0]

    def process_domains(self, domain_pks):
        """Compute, claim, queue and (unless queue-only) deliver the reports
        of these domains, as one batch; return them. For Celery workers."""
        template = ReportTemplate.load()
        rows = list(self._domain_rows().filter(pk__in=domain_pks))
        figures = compute_figures([row["pk"] for row in rows], self.week)
        return self._process_batch(rows, template, figures)

    def _domains(self):
        domains = self.Domain.objects.all()
        if self.domain_names:
            domains = domains.filter(name__in=self.domain_names)
        return domains

    @staticmethod
    def _sort_key(name_field):
        """Order by name code point by code point, as Python sorts,
        whatever the database's collation."""
        collation = "C" if connection.vendor == "postgresql" else "BINARY"
        return Collate(F(name_field), collation)

    def _domain_rows(self):
        return (
            self._domains()
            .annotate(sort_name=self._sort_key("name"))
            .order_by("sort_name")
            .values(
                "pk",
                "name",
                "email",
                "is_active",
                "sort_name",
                organization_name=F("organization__name"),
                is_subscribed=F("weekly_report_subscription__is_subscribed"),
                extra_recipients=F("weekly_report_subscription__extra_recipients"),
            )
        )

    def _domain_batches(self):
        """Yield lists of domain rows in name order, from one stream."""
        batch = []
        for row in self._domain_rows().iterator(chunk_size=self.batch_size):
            batch.append(row)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _domain_pages(self):
        """Yield lists of domain rows in name order, one query per page."""
        rows = self._domain_rows()
        last_name = None
        while True:
            page = rows if last_name is None else rows.filter(sort_name__gt=last_name)
            batch = list(page[: self.batch_size])
            if not batch:
                return
            yield batch
            last_name = batch[-1]["sort_name"]

    def _make_reports(self, batch, figures):
        subscribed_by_default = conf.get("SUBSCRIBED_BY_DEFAULT")
        reports = []
        for row in batch:
            email = row["email"].strip() if row["email"] is not None else None
            is_subscribed = row["is_subscribed"]
            reports.append(
                Report(
                    domain_pk=row["pk"],
                    domain_name=row["name"],
                    organization=row["organization_name"] or row["name"],
                    email=email,
                    is_active=row["is_active"],
                    is_subscribed=(
                        subscribed_by_default
                        if is_subscribed is None
                        else is_subscribed
                    ),
                    extra_recipients=parse_addresses(row["extra_recipients"] or ""),
                    week=self.week,
                    figures=figures.get(row["pk"], Figures()),
                )
            )
        return reports

    def _process_batch(self, batch, template, figures):
        reports = self._make_reports(batch, figures)
        if self.dry_run:
            self._preview(reports)
            return reports

        for attempt in (1, 2):
            try:
                to_deliver, touched = self._queue(reports, template)
                break
            except IntegrityError:
                # Another run inserted ledger rows for the same domains and
                # week in the meantime; read them and decide again.
                if attempt == 2:
                    raise
                logger.info("Ledger rows appeared concurrently; claiming again.")

        results = {}
        if to_deliver and self.celery:
            self._hand_out_delivery(to_deliver)
        elif to_deliver and not self.queue_only:
            results = self._deliver(to_deliver)
        self._record_outcomes(reports, touched, results)
        return reports

    def _hand_out_delivery(self, email_ids):
        from .tasks import deliver_emails

        size = conf.post_office_batch_size()
        for start in range(0, len(email_ids), size):
            deliver_emails.delay(email_ids[start : start + size])

    def _preview(self, reports):
        ledger = dict(
            Delivery.objects.filter(
                week=str(self.week), domain_id__in=[r.domain_pk for r in reports]
            ).values_list("domain_id", "status")
        )
        for report in reports:
            reason = report.skip_reason() or self._already_sent(
                ledger.get(report.domain_pk)
            )
            report.status = Delivery.Status.SKIPPED if reason else "would_send"
            report.reason = reason
            if reason:
                self._log_skip(report)

    def _already_sent(self, ledger_status):
        sent_before = ledger_status in (Delivery.Status.QUEUED, Delivery.Status.SENT)
        return Reason.ALREADY_SENT if sent_before and not self.force else None

    @transaction.atomic
    def _queue(self, reports, template):
        """Claim this batch's ledger rows and queue its mail, all in one
        transaction. Return the message ids to deliver and the ledger rows
        whose state this run decides, by domain pk."""
        week = str(self.week)
        ledger = {
            row.domain_id: row
            for row in Delivery.objects.select_for_update().filter(
                week=week, domain_id__in=[report.domain_pk for report in reports]
            )
        }
        delivered = _delivered_recipients(ledger.values())
        pending = _pending_emails(ledger.values())

        emails, links, new_rows, changed_rows = [], [], [], {}
        touched, to_deliver = {}, []
        now = timezone.now()
        hold = datetime.timedelta(seconds=conf.get("HOLD_SECONDS"))
        held_until = now + hold if self.hold else None
        for report in reports:
            row = ledger.get(report.domain_pk)
            reason = report.skip_reason()
            report.reason = reason or self._already_sent(row and row.status)

            if report.reason == Reason.ALREADY_SENT and row.pk in pending:
                # A run that died before delivering left this mail queued.
                to_deliver.extend(pending[row.pk])
                touched[report.domain_pk] = row

            if report.reason:
                report.status = Delivery.Status.SKIPPED
                self._log_skip(report)
                if reason and (row is None or row.status not in _SENT_STATES):
                    row = self._ledger_row(row, report, now, new_rows, changed_rows)
                    row.status, row.reason, row.error = (
                        Delivery.Status.SKIPPED,
                        reason,
                        "",
                    )
                continue

            recipients = report.recipients
            if row is not None and not self.force:
                already = delivered.get(row.pk, set())
                recipients = [r for r in recipients if r.casefold() not in already]

            row = self._ledger_row(row, report, now, new_rows, changed_rows)
            row.status, row.reason, row.error = Delivery.Status.QUEUED, "", ""
            row.recipients = ", ".join(report.recipients)
            touched[report.domain_pk] = row

            context = context_for(report)
            subject, text, html = template.render(context)
            headers = headers_for(context["unsubscribe_url"])
            for recipient in recipients:
                emails.append(
                    Email(
                        from_email=settings.DEFAULT_FROM_EMAIL,
                        to=[recipient],
                        subject=subject[:_SUBJECT_WIDTH],
                        message=text,
                        html_message=html,
                        headers=dict(headers),
                        status=STATUS.queued,
                        priority=PRIORITY.medium,
                        template=template.email_template,
                        scheduled_time=held_until,
                    )
                )
                links.append(row)

        Delivery.objects.bulk_create(new_rows)
        _save_states([row for row, _, _ in changed_rows.values()], now)
        renamed = [
            row
            for row, name, recipients in changed_rows.values()
            if (row.domain_name, row.recipients) != (name, recipients)
        ]
        Delivery.objects.bulk_update(renamed, ["domain_name", "recipients"])
        Email.objects.bulk_create(emails)
        Delivery.emails.through.objects.bulk_create(
            Delivery.emails.through(delivery_id=row.pk, email_id=email.pk)
            for row, email in zip(links, emails, strict=True)
        )
        to_deliver.extend(email.pk for email in emails)

        if emails and not self.celery:
            # Receivers of post_office's signal learn of the new mail as if
            # post_office had queued it. Celery workers deliver this run's
            # mail through their own task instead.
            transaction.on_commit(
                lambda: email_queued.send(sender=Email, emails=emails)
            )
        return to_deliver, touched

    def _ledger_row(self, row, report, now, new_rows, changed_rows):
        if row is None:
            row = Delivery(
                domain_id=report.domain_pk,
                domain_name=report.domain_name,
                week=str(self.week),
            )
            new_rows.append(row)
        else:
            changed_rows.setdefault(row.pk, (row, row.domain_name, row.recipients))
        row.domain_name = report.domain_name
        row.updated = now
        return row

    def _deliver(self, email_ids):
        if not self._lock_held:
            return {}

        # A batch worker delivers its own batch in its own process; only
        # the main process of a run has a pool of delivery processes.
        return deliver(email_ids, held=True, pool=self._delivery_pool)

    def _record_outcomes(self, reports, touched, results):
        """Settle the ledger rows this run decided and copy their state onto
        the reports."""
        settle(row for row in touched.values() if row.status == Delivery.Status.QUEUED)

        attempted = defaultdict(bool)
        if results:
            for delivery_id in Delivery.emails.through.objects.filter(
                email_id__in=list(results)
            ).values_list("delivery_id", flat=True):
                attempted[delivery_id] = True

        for report in reports:
            row = touched.get(report.domain_pk)
            if row is None:
                continue

            resumed = report.reason == Reason.ALREADY_SENT
            if resumed and not attempted[row.pk]:
                continue
            report.reason = None if resumed else report.reason
            report.status = row.status
            report.error = row.error
            if row.status == Delivery.Status.FAILED:
                report.reason = row.error
            self._log_outcome(report, row)

    def _log_skip(self, report):
        logger.warning(
            "Skipped the weekly report for %s (%s): %s.",
            report.domain_name,
            self.week,
            report.reason,
        )

    def _log_outcome(self, report, row):
        if row.status == Delivery.Status.SENT:
            logger.info(
                "Sent the weekly report for %s (%s) to %s.",
                report.domain_name,
                self.week,
                row.recipients,
            )
        elif row.status == Delivery.Status.FAILED:
            logger.error(
                "The weekly report for %s (%s) failed: %s",
                report.domain_name,
                self.week,
                row.error,
            )
        elif self.queue_only:
            logger.info(
                "Queued the weekly report for %s (%s) to %s.",
                report.domain_name,
                self.week,
                row.recipients,
            )
        else:
            logger.warning(
                "The weekly report for %s (%s) is deferred: %s",
                report.domain_name,
                self.week,
                row.error or "the sender lock was busy",
            )


_SENT_STATES = (Delivery.Status.QUEUED, Delivery.Status.SENT)


def _link_rows(deliveries):
    """The ledger-to-message links of these rows, or None for no rows."""
    ids = [row.pk for row in deliveries if row.pk]
    if not ids:
        return None
    return Delivery.emails.through.objects.filter(delivery_id__in=ids)


def _delivered_recipients(deliveries):
    """Addresses each ledger row's mail has already reached, case-folded."""
    delivered = defaultdict(set)
    links = _link_rows(deliveries)
    if links is not None:
        for delivery_id, to in links.filter(email__status=STATUS.sent).values_list(
            "delivery_id", "email__to"
        ):
            delivered[delivery_id].update(address.casefold() for address in to)
    return delivered


def _pending_emails(deliveries):
    """First attempts of ledger rows, left queued by an interrupted run.
    Retries wait for their time and belong to the retry sender."""
    pending = defaultdict(list)
    links = _link_rows(deliveries)
    if links is not None:
        for delivery_id, email_id in links.filter(
            email__status=STATUS.queued
        ).values_list("delivery_id", "email_id"):
            pending[delivery_id].append(email_id)
    return pending


_SETTLE_CHUNK = 1000


def settle(deliveries):
    """Bring queued ledger rows up to date with their messages' states.

    Per recipient the newest message counts: a row is sent when each of its
    recipients' newest message was sent, failed when none is pending any more
    and one failed, and stays queued while any is waiting for a retry.
    ``deliveries`` may be a queryset of any size: it is read in chunks.
    """
    if isinstance(deliveries, QuerySet):
        deliveries = deliveries.order_by("pk").iterator(chunk_size=_SETTLE_CHUNK)

    chunk = []
    for row in deliveries:
        chunk.append(row)
        if len(chunk) == _SETTLE_CHUNK:
            _settle_chunk(chunk)
            chunk = []
    if chunk:
        _settle_chunk(chunk)


def _settle_chunk(deliveries):
    links = _link_rows(deliveries)
    if links is None:
        return

    newest = defaultdict(dict)
    for delivery_id, email_id, status, to in links.order_by("email_id").values_list(
        "delivery_id", "email_id", "email__status", "email__to"
    ):
        newest[delivery_id][",".join(to).casefold()] = (email_id, status)

    unsent = [
        email_id
        for per_recipient in newest.values()
        for email_id, status in per_recipient.values()
        if status != STATUS.sent
    ]
    errors = {}
    for email_id, message in (
        Log.objects.filter(email_id__in=unsent, status=STATUS.failed)
        .order_by("email_id", "date", "pk")
        .values_list("email_id", "message")
    ):
        errors[email_id] = message

    changed = []
    now = timezone.now()
    for row in deliveries:
        latest = newest.get(row.pk)
        if not latest:
            continue
        statuses = {status for _, status in latest.values()}
        error = "; ".join(
            errors[email_id]
            for email_id, status in latest.values()
            if email_id in errors
        )
        if statuses == {STATUS.sent}:
            state, error = Delivery.Status.SENT, ""
        elif statuses & set(PENDING):
            state = Delivery.Status.QUEUED
        else:
            state = Delivery.Status.FAILED
        if (state, error) != (row.status, row.error):
            row.status, row.error, row.updated = state, error, now
            changed.append(row)
    _save_states(changed, now)


def _save_states(deliveries, now):
    """Write the status, reason and error of ledger rows: one UPDATE per
    distinct state, far cheaper than a bulk update's CASE per row."""
    by_state = defaultdict(list)
    for row in deliveries:
        by_state[row.status, row.reason, row.error].append(row.pk)

    for (status, reason, error), pks in by_state.items():
        Delivery.objects.filter(pk__in=pks).update(
            status=status, reason=reason, error=error, updated=now
        )


_worker_state = {}


def _process_in_worker(settings, batch, figures):
    """Process one batch in a pool worker; the run and its template are made
    once per worker."""
    if _worker_state.get("settings") != settings:
        run = WeeklyRun(
            week=settings["week"],
            force=settings["force"],
            queue_only=settings["queue_only"],
        )
        run._lock_held = settings["lock_held"]
        _worker_state.update(settings=settings, run=run, template=ReportTemplate.load())

    run = _worker_state["run"]
    reports = run._process_batch(batch, _worker_state["template"], figures)
    # Reports travel back to the parent by pickling; a compiled template or
    # a model instance never rides along.
    return reports


def _sample_context(week):
    """A context with every key a real report has, for a trial render."""
    return context_for(Report.sample(week))
