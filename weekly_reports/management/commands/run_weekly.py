import json
import os
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, connection
from tqdm import tqdm

from weekly_reports.exceptions import ReportError
from weekly_reports.models import Delivery
from weekly_reports.runner import WeeklyRun
from weekly_reports.weeks import IsoWeek


def _week(value):
    try:
        return IsoWeek.parse(value)
    except ReportError as error:
        raise CommandError(str(error), returncode=2) from error


class Command(BaseCommand):
    help = (
        "Compute each domain's bug statistics for one ISO week and mail the "
        "report through django-post-office. Exits 0 when every report went "
        "out or was skipped, 1 when any failed or was deferred for a retry, "
        "and 2 for a bad argument or a broken template."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--week",
            help="ISO week to report, such as 2026-W48. Default: the last "
            "complete week in TIME_ZONE.",
        )
        parser.add_argument(
            "--domain",
            action="append",
            dest="domains",
            metavar="NAME",
            help="Report only this domain; repeat the option for several.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Compute and print the reports; write and send nothing.",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print one JSON object per domain per line on stdout; the "
            "summary goes to stderr.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Send again to domains whose report for the week was already "
            "queued or sent.",
        )
        parser.add_argument(
            "--queue-only",
            action="store_true",
            help="Queue the mail in post_office and leave delivery to "
            "send_queued_mail or Celery workers.",
        )

    def execute(self, *args, **options):
        # Argument errors must exit with 2 and one line, like every other
        # error the command reports.
        try:
            return super().execute(*args, **options)
        except CommandError as error:
            if error.returncode == 1:
                error.returncode = 2
            raise

    def handle(self, *args, **options):
        try:
            connection.ensure_connection()
        except (OperationalError, ImproperlyConfigured) as error:
            # Unreachable at the start, or no driver for it, is a setting to
            # fix (DATABASE_URL, a server to start, a package to install),
            # said in one line; a failure later in the run keeps its
            # traceback.
            message = " ".join(str(error).split())
            raise CommandError(
                f"The database cannot be reached: {message}", returncode=2
            ) from error
        if Delivery._meta.db_table not in connection.introspection.table_names():
            raise CommandError(
                f"The database {connection.settings_dict['NAME']} has no weekly "
                "reports tables; run 'python manage.py migrate' first.",
                returncode=2,
            )

        # An empty --week is a mistake to report, not a request for the
        # default week.
        week = _week(options["week"]) if options["week"] is not None else None
        run = WeeklyRun(
            week=week,
            domain_names=options["domains"],
            dry_run=options["dry_run"],
            force=options["force"],
            queue_only=options["queue_only"],
        )

        as_json = options["json"]
        progress = tqdm(
            total=None,
            unit=" domains",
            desc=f"Weekly reports {run.week}",
            disable=not sys.stderr.isatty() or options["verbosity"] == 0,
            file=sys.stderr,
        )
        if not progress.disable:
            progress.total = run.count_domains()

        def on_report(report):
            if as_json:
                self._print(json.dumps(report.as_json(), ensure_ascii=False))
            elif options["dry_run"] or options["verbosity"] >= 2:
                self._print(_describe(report))

        try:
            with progress:
                summary = run.execute(on_report=on_report, on_batch=progress.update)
        except ReportError as error:
            raise CommandError(str(error), returncode=2) from error

        if as_json:
            self.stderr.write(summary.line(), style_func=lambda text: text)
        else:
            self._print(summary.line())
        if summary.exit_status:
            sys.exit(summary.exit_status)

    def _print(self, line):
        """Write a line to stdout. A reader that went away (``| head``) must
        not stop the run halfway: the rest of the output is dropped and the
        reports are still sent."""
        try:
            self.stdout.write(line)
            self.stdout.flush()
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())


def _describe(report):
    figures = report.figures
    outcome = report.status + (f" ({report.reason})" if report.reason else "")
    return (
        f"{report.domain_name}: {outcome}; open {figures.open}, closed "
        f"{figures.closed}, total {figures.total}, opened this week "
        f"{figures.opened_this_week}, closed this week {figures.closed_this_week}"
    )
