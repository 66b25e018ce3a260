"""Delivering queued mail, one claimed message at a time.

post_office's own sender marks a whole batch sent only after the batch went
out, so a crash halfway resends everything before it, and it takes no lock
on the rows it sends, so two senders on two hosts send the same message
twice. Here each message is claimed under a row lock, sent, and committed as
sent before the next one: a process killed at any point resends at most the
one message that was on the wire, and a concurrent sender skips it.

run_weekly queues its messages held back (``scheduled_time`` a little in
the future) and delivers them itself at once, so that a sender that does not
claim rows, such as post_office's own Celery task, cannot take them in the
same moment. A run that dies leaves them to the next run or, once the hold
has passed, to ``send_queued_mail``.
"""

import functools
import gc
import logging
import multiprocessing
import os
import smtplib
import socket
import time
from contextlib import contextmanager, suppress

from django.core.mail import get_connection
from django.db import connections, router, transaction
from django.db.models import Q
from django.utils import timezone
from post_office import settings as post_office_settings
from post_office.lockfile import FileLock, FileLocked
from post_office.mail import default_lockfile
from post_office.models import STATUS, Email, Log

from . import mime

logger = logging.getLogger(__name__)

PENDING = (STATUS.queued, STATUS.requeued)

# Due messages that deliver_due() takes from the queue and deals out to its
# processes at a time: enough that setting up a round costs little per
# message, few enough that a round's ids stay a short list.
ROUND_SIZE = 1000


def is_temporary(error):
    """Whether retrying later may succeed: a 4xx answer or a broken link.

    A 5xx answer is permanent (RFC 5321, section 4.2.1): retrying it only
    annoys the receiving server.
    """
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return bool(codes) and all(400 <= code < 500 for code in codes)
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(error, smtplib.SMTPException):
        return False
    # Refused or reset connections, time-outs and name look-ups.
    return isinstance(error, OSError)


def describe(error):
    """One line for the ledger and the log: the SMTP answer where there is one."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        answers = [
            f"{address}: {code} {message.decode(errors='replace')}"
            for address, (code, message) in error.recipients.items()
        ]
        return "Recipient refused: " + "; ".join(answers)
    if isinstance(error, smtplib.SMTPResponseException):
        message = error.smtp_error
        if isinstance(message, bytes):
            message = message.decode(errors="replace")
        return f"{type(error).__name__}: {error.smtp_code} {message}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _try_lock(lock):
    """Take post_office's lock without waiting; return whether it was taken."""
    try:
        lock.__enter__()
    except FileLocked:
        return False
    except FileExistsError:
        # Another process created the lock in the same instant; drop the pid
        # file this attempt left behind, or the next attempt trips over it.
        with suppress(OSError):
            os.remove(lock.pid_filename)
        return False
    return True


@contextmanager
def sender_lock(wait_seconds, lockfile=None):
    """Hold post_office's sender lock, so that ``send_queued_mail`` on this
    host never sends the same queued message at the same time.

    Yields whether the lock was taken within ``wait_seconds``. post_office's
    own waiting loop can report the lock free without taking it, so this one
    polls the non-waiting form instead.
    """
    lock = FileLock(lockfile or default_lockfile)
    deadline = time.monotonic() + wait_seconds
    taken = _try_lock(lock)
    while not taken and time.monotonic() < deadline:
        time.sleep(0.5)
        taken = _try_lock(lock)

    try:
        yield taken
    finally:
        if taken:
            lock.release()


def deliver(email_ids, held=False, pool=None):
    """Deliver these messages and return ``{email_id: status}`` for the ones
    this call claimed: in ``pool`` when there is one, else in this process."""
    email_ids = sorted(email_ids)
    if pool is not None:
        return pool.deliver(email_ids, held)
    return _deliver_share(email_ids, held)


class DeliveryPool:
    """Forked processes that deliver messages, each over its own SMTP
    connection.

    Fork the pool before a run opens any streaming cursor: forking closes the
    parent's database connections, so that no child ever writes on the
    parent's socket, and an open cursor would die with them.
    """

    def __init__(self, processes):
        self.processes = processes

    def __enter__(self):
        connections.close_all()
        context = multiprocessing.get_context("fork")
        self._pool = context.Pool(self.processes)
        return self

    def __exit__(self, *exc_info):
        self._pool.__exit__(*exc_info)

    def deliver(self, email_ids, held=False):
        shares = [
            (email_ids[start :: self.processes], held)
            for start in range(self.processes)
        ]
        results = {}
        for share_results in self._pool.starmap(_deliver_share, shares):
            results.update(share_results)
        return results


def _deliver_share(email_ids, held):
    deliverer = Deliverer()
    try:
        return deliverer.deliver(email_ids, held)
    finally:
        deliverer.close()
        if multiprocessing.parent_process() is not None:
            connections.close_all()


def due_email_ids(limit):
    """Ids of queued messages whose time has come, most urgent first."""
    return list(
        Email.objects.filter(_due(timezone.now()), status__in=PENDING)
        .order_by("-priority", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def deliver_due(processes=1, round_size=ROUND_SIZE):
    """Deliver every due message in the queue, round by round; return how
    many were sent, failed and requeued, in that order."""
    if processes <= 1:
        return _deliver_rounds(None, round_size)

    # One pool for all rounds: forking, and each process connecting to the
    # database and the mail server, would otherwise be paid again per round.
    with DeliveryPool(processes) as pool:
        return _deliver_rounds(pool, round_size)


def _deliver_rounds(pool, round_size):
    totals = {STATUS.sent: 0, STATUS.failed: 0, STATUS.requeued: 0}
    while True:
        email_ids = due_email_ids(round_size)
        results = deliver(email_ids, pool=pool) if email_ids else {}
        if not results:
            # Nothing due, or everything due is being sent by another sender.
            return totals[STATUS.sent], totals[STATUS.failed], totals[STATUS.requeued]

        for status in results.values():
            totals[status] += 1


# Errors that say the server cannot be reached at all, rather than that it
# refused one message.
_UNREACHABLE = (ConnectionRefusedError, TimeoutError, socket.gaierror)


def _due(now):
    """Messages any sender may take now."""
    return (Q(scheduled_time__isnull=True) | Q(scheduled_time__lte=now)) & (
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )


def _claim(alias, email_pk, held, now):
    """Mark one pending message sent if this sender may take it now; return
    whether it did.

    Any sender may take a message that is due (see ``_due``). The run that
    queued a message, ``held``, may also take its first attempt while it is
    held back from the others; a retry only when due.

    This is the UPDATE that ``Email.objects.filter(...).update(...)`` would
    run with those conditions, written once: building it through the ORM
    for every message took four times the CPU of running it.
    """
    connection = connections[alias]
    moment = connection.ops.adapt_datetimefield_value(now)
    params = [STATUS.sent, moment, email_pk, *PENDING, moment, moment]
    if held:
        params.append(STATUS.queued)

    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(alias, held), params)
        return cursor.rowcount == 1


@functools.cache
def _claim_sql(alias, held):
    quote = connections[alias].ops.quote_name
    table = quote(Email._meta.db_table)
    pk = quote(Email._meta.pk.column)
    status, updated, scheduled, expires = (
        quote(Email._meta.get_field(name).column)
        for name in ("status", "last_updated", "scheduled_time", "expires_at")
    )
    first_attempt = f" OR {status} = %s" if held else ""
    # Only names quoted from the model's options go into the text; every
    # value is a parameter.
    return (
        f"UPDATE {table} SET {status} = %s, {updated} = %s "  # nosec B608
        f"WHERE {pk} = %s AND {status} IN (%s, %s) "
        f"AND ({expires} IS NULL OR {expires} > %s) "
        f"AND ({scheduled} IS NULL OR {scheduled} <= %s{first_attempt})"
    )


@contextmanager
def _collecting_young_objects():
    """Keep the objects alive on entry out of the garbage collector's way
    until exit, so that a collection inside looks only through the objects
    made since. A process that froze objects itself is left as it is."""
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        yield
    finally:
        if freeze:
            gc.unfreeze()


class Deliverer:
    """Sends claimed messages over one reused connection."""

    chunk_size = 100

    def __init__(self):
        alias = post_office_settings.get_default_mailer()
        self.connection = get_connection(post_office_settings.get_backend(alias))
        # The database the claims are written to.
        self.alias = router.db_for_write(Email)
        self.max_retries = post_office_settings.get_max_retries()
        self.retry_interval = post_office_settings.get_retry_timedelta()
        self.unreachable = None

    def close(self):
        try:
            self.connection.close()
        except Exception:
            logger.warning("Closing the mail connection failed.", exc_info=True)

    def deliver(self, email_ids, held=False):
        """Send each of these messages that is still due; return
        ``{email_id: status}`` for the ones this process claimed. A message
        that another process sent meanwhile is left out.

        ``held`` is for the run that queued the messages: it may take them
        during the time they are held back from other senders.
        """
        results = {}
        email_ids = sorted(email_ids)
        with _collecting_young_objects():
            for start in range(0, len(email_ids), self.chunk_size):
                chunk = email_ids[start : start + self.chunk_size]
                self._deliver_chunk(chunk, held, results)
                # A chunk's messages and their MIME trees hold reference
                # cycles; collected now, a process's memory stays that of
                # one chunk instead of growing until the next full turn.
                gc.collect()
        return results

    def _deliver_chunk(self, chunk, held, results):
        emails = (
            Email.objects.filter(pk__in=chunk, status__in=PENDING)
            .select_related("template")
            .prefetch_related("attachments")
            .order_by("pk")
        )
        logs = []
        for email in emails:
            status = self._deliver_one(email, held, logs)
            if status is not None:
                results[email.pk] = status
        Log.objects.bulk_create(logs)

    def _deliver_one(self, email, held, logs):
        """Claim, send and commit one message.

        The claim is an UPDATE that marks the message sent; its row lock is
        held while the SMTP exchange runs and committed when the server has
        accepted the message. A concurrent sender blocks on that lock and
        then finds the message no longer pending.
        """
        if self.unreachable is not None:
            # The server refused to connect or stopped answering: every
            # further message would wait for the same time-out. They are
            # deferred with that error, and retried on the usual schedule.
            return self._record_failure(email, self.unreachable, logs)

        try:
            with transaction.atomic(using=self.alias):
                if not _claim(self.alias, email.pk, held, timezone.now()):
                    return None
                # Opened here, not by send_messages(), which would close
                # again after each message what it opened itself.
                self.connection.open()
                mime.send(self.connection, email.prepare_email_message())
        except Exception as error:
            # A failed exchange can leave the connection half-open; the next
            # message starts a fresh one.
            self.close()
            if isinstance(error, _UNREACHABLE):
                self.unreachable = error
            return self._record_failure(email, error, logs)

        logs.append(Log(email=email, status=STATUS.sent, message=""))
        return STATUS.sent

    def _record_failure(self, email, error, logs):
        retries = email.number_of_retries or 0
        retry = is_temporary(error) and retries < self.max_retries

        if retry:
            email.status = STATUS.requeued
            email.number_of_retries = retries + 1
            email.scheduled_time = timezone.now() + self.retry_interval
        else:
            email.status = STATUS.failed
        # Only a message still pending is marked: another sender may have
        # delivered it since this claim was rolled back.
        Email.objects.filter(pk=email.pk, status__in=PENDING).update(
            status=email.status,
            number_of_retries=email.number_of_retries,
            scheduled_time=email.scheduled_time,
            last_updated=timezone.now(),
        )
        logs.append(
            Log(
                email=email,
                status=STATUS.failed,
                message=describe(error),
                exception_type=type(error).__name__,
            )
        )

        if retry:
            logger.warning(
                "Delivery of message %s to %s failed for now; retry %s of %s at %s: %s",
                email.pk,
                ", ".join(email.to),
                email.number_of_retries,
                self.max_retries,
                email.scheduled_time.isoformat(timespec="seconds"),
                describe(error),
            )
        else:
            logger.error(
                "Delivery of message %s to %s failed: %s",
                email.pk,
                ", ".join(email.to),
                describe(error),
                exc_info=error,
            )
        return email.status
