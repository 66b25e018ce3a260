"""Time run_weekly against the per-domain loop of BLT's own command.

``scripts/benchmark`` runs this command on a PostgreSQL database of its own:
it drops and creates the database, migrates it, seeds it with ``seed_demo``
and then measures, in the same run and on the same data,

(a) the baseline: BLT's way, a loop over the domains that runs a few queries
    and one ``send_mail`` per domain, each over a new SMTP connection;
(b) run_weekly phase by phase: the figures (FigureStream, and its aggregate
    and window SQL run bare), rendering, ``run_weekly --queue-only``,
    delivery with ``send_queued_mail``, and the whole ``run_weekly``;

beside a plain smtplib client that sends as many messages to the same
loopback SMTP server, which is the most that delivery can reach.

Every measurement runs in a process of its own, so that its peak memory and
CPU time are its own: the in-process phases in a forked child, run_weekly
and send_queued_mail as real ``manage.py`` processes. The SMTP server is one
more process, so that it never shares an interpreter lock with a client.
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import pickle  # nosec B403 (only its own child process's output)
import platform
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import css_inline
import django
import psycopg2
from django.conf import settings
from django.core.mail import get_connection, send_mail
from django.core.mail.message import sanitize_address
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection, connections
from django.db.models import F
from django.db.models.functions import Collate
from django.template import Context
from post_office.models import STATUS, Email, Log

from blt.website.models import Domain, Issue
from weekly_reports import conf
from weekly_reports.models import Delivery
from weekly_reports.rendering import ReportTemplate, context_for
from weekly_reports.reports import Report
from weekly_reports.stats import FigureStream
from weekly_reports.weeks import IsoWeek

MANAGE_PY = Path(settings.BASE_DIR) / "manage.py"
# Rows fetched per round trip by every streaming query, as FigureStream does.
CHUNK_SIZE = 2000
# Reports whose rendering is split into its steps, to show where time goes.
RENDER_SAMPLE = 1000
# Distinct real messages the plain SMTP client cycles through.
PLAIN_SAMPLE = 20
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The issue's targets, for 100,000 domains unless said otherwise.
QUERIES_PER_BATCH = 3
BARE_SQL_FACTOR = 1.5
FIGURES_SPEED_UP = 20
WHOLE_JOB_SPEED_UP = 3
QUEUE_ONLY_SECONDS = 120
PEAK_MB = 300
PLAIN_CLIENT_SHARE = 0.8


# Measurements and the table.


@dataclass
class Measurement:
    name: str
    wall: float
    cpu: float | None = None
    queries: int | None = None
    peak_mb: float | None = None
    messages: int | None = None
    # Seconds the work itself took, without starting Python and Django; the
    # rate is computed on these when they are known.
    busy: float | None = None
    versus: str = ""
    note: str = ""

    @property
    def rate(self):
        seconds = self.busy or self.wall
        if self.messages is None or not seconds:
            return None
        return self.messages / seconds

    def cells(self):
        def number(value, digits=0):
            return "" if value is None else f"{value:,.{digits}f}"

        return [
            self.name,
            number(self.wall, 2),
            number(self.cpu, 1),
            number(self.queries),
            number(self.peak_mb),
            number(self.rate),
            self.versus,
            self.note,
        ]


TABLE_HEADER = [
    "measurement",
    "wall s",
    "CPU s",
    "queries",
    "peak MB",
    "msgs/s",
    "speed-up vs (a)",
    "note",
]

TABLE_LEGEND = (
    "Wall time is end to end; for the manage.py rows that includes starting "
    "Python and Django, and their msgs/s counts only the time inside the "
    "command. CPU s is the user and system time of the measured process and "
    "its workers, without PostgreSQL's and the SMTP server's. Queries are the "
    "statements sent through Django by the process and its workers (BEGIN and "
    "COMMIT not counted). Peak MB is the largest resident set of the process "
    "or of one of its workers; the forked rows start from the benchmark's own "
    "{own_mb:.0f} MB. The SMTP server is aiosmtpd on loopback in a process of "
    'its own, which accepts and discards every message; "machine busy" is '
    "the share of all cores in use during the row, by anything. The (a) rows "
    "split one run of the loop, so only its whole row has CPU and memory; "
    '"refused" counts the send_mail calls that raised (addresses that Django '
    "or the server turned down), which the loop passes over as BLT's does. "
    "\"speed-up vs (a)\" divides the loop's query time by the figures' wall "
    "time, and the whole loop's wall time by the whole job's. The rendering "
    "row times the rendering alone, and its msgs/s is reports rendered per "
    "second."
)


def markdown_table(rows):
    lines = [
        "| " + " | ".join(TABLE_HEADER) + " |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return lines


class Watch:
    """The share of the machine's cores in use, by anything, and the SMTP
    server's CPU time, over one measurement."""

    def __init__(self, smtp):
        self.smtp = smtp

    def __enter__(self):
        self._ticks = _machine_ticks()
        self._server = self.smtp.cpu_seconds()
        return self

    def __exit__(self, *exc_info):
        total, idle = (
            after - before
            for after, before in zip(_machine_ticks(), self._ticks, strict=True)
        )
        self.busy_share = 1 - idle / total if total else 0.0
        self.server_cpu = self.smtp.cpu_seconds() - self._server

    def note(self, server=True):
        note = f"machine {self.busy_share:.0%} busy"
        if server:
            note += f", SMTP server {self.server_cpu:.1f} CPU s"
        return note


def missing(delivered, queued):
    """A warning for the note of a row that delivered fewer messages than
    were queued."""
    if delivered == queued:
        return ""
    return f"; NOT ALL DELIVERED: {delivered:,} of {queued:,}"


def _machine_ticks():
    """Clock ticks of all cores since boot: in total, and idle or waiting."""
    with open("/proc/stat") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:]]
    return sum(ticks), ticks[3] + ticks[4]


# Processes.


class CountingHandler:
    """An aiosmtpd handler that accepts every message and counts it."""

    def __init__(self, counter):
        self.counter = counter

    async def handle_DATA(self, server, session, envelope):
        with self.counter.get_lock():
            self.counter.value += 1
        return "250 Message accepted for delivery"


class SMTPSink:
    """A loopback aiosmtpd server in a process of its own, which counts what
    it accepts in memory shared with this process."""

    def __init__(self):
        context = multiprocessing.get_context("fork")
        self.accepted = context.Value("q", 0)
        self.port = _free_port()
        self._ready = context.Event()
        self._process = context.Process(target=self._serve, daemon=True)

    def __enter__(self):
        # Forked before this process opens a database connection, which the
        # server must not share.
        connections.close_all()
        self._process.start()
        if not self._ready.wait(30):
            raise CommandError("The loopback SMTP server did not start in 30 s.")
        return self

    def __exit__(self, *exc_info):
        self._process.terminate()
        self._process.join(10)

    def cpu_seconds(self):
        with open(f"/proc/{self._process.pid}/stat") as stat:
            # The command name, in parentheses, may hold spaces.
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def _serve(self):
        from aiosmtpd.controller import Controller

        controller = Controller(
            CountingHandler(self.accepted), hostname="127.0.0.1", port=self.port
        )
        controller.start()
        self._ready.set()
        threading.Event().wait()


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ChildRun:
    value: object
    peak_mb: float
    cpu: float


def in_child(function, *args):
    """Run ``function(*args)`` in a forked process; return its result, that
    process's peak resident memory and its CPU time."""
    # A forked child must open its own database connection.
    connections.close_all()
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        status = 0
        try:
            payload = pickle.dumps(("ok", function(*args)))
        except BaseException:
            payload = pickle.dumps(("error", traceback.format_exc()))
            status = 1
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)
        connections.close_all()
        os._exit(status)

    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        payload = pipe.read()
    _, _, usage = os.wait4(pid, 0)
    if not payload:
        raise CommandError(f"The benchmark phase {function.__name__} died.")
    outcome, value = pickle.loads(payload)  # nosec B301
    if outcome == "error":
        raise CommandError(f"The benchmark phase {function.__name__} failed:\n{value}")
    return ChildRun(value, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def counting_queries(counter):
    """An execute wrapper that counts statements into a shared ``Value``;
    forked workers inherit it, so that their statements count too."""

    def count(execute, sql, params, many, context):
        with counter.get_lock():
            counter.value += 1
        return execute(sql, params, many, context)

    return connection.execute_wrapper(count)


# The data, read as run_weekly reads it.


def domain_rows():
    """Every domain, in run_weekly's order: by name, code point by code
    point."""
    return (
        Domain.objects.annotate(sort_name=Collate(F("name"), "C"))
        .order_by("sort_name")
        .values_list("pk", "name", "email", "is_active", "organization__name")
        .iterator(chunk_size=CHUNK_SIZE)
    )


def figure_stream(week):
    return FigureStream(Domain.objects.all(), week, Collate(F("name"), "C"))


def is_mailed_by_baseline(email, is_active):
    return is_active and bool((email or "").strip())


def figures_line(pk, counts, recent_pks):
    return f"{pk}:{counts}:{recent_pks}"


def combine(lines):
    """A digest of per-domain lines that ignores their order, since the
    baseline reads the domains in another order than run_weekly."""
    total = 0
    for line in lines:
        total += int.from_bytes(hashlib.sha256(line.encode()).digest()[:8], "big")
    return f"{total % 2**64:016x}"


# (a) The baseline, measured in a forked child.


def baseline_loop(week, smtp_port):
    """BLT's loop: for each domain with an address, one query per figure and
    one for the recent issues, then one send_mail over a new connection."""
    queries = multiprocessing.Value("q", 0)
    query_seconds = send_seconds = 0.0
    failed = 0
    lines = []
    started = time.perf_counter()

    with counting_queries(queries):
        for domain in Domain.objects.select_related("organization"):
            if not is_mailed_by_baseline(domain.email, domain.is_active):
                continue

            began = time.perf_counter()
            counts, recent = baseline_figures(domain, week)
            query_seconds += time.perf_counter() - began
            lines.append(
                figures_line(domain.pk, counts, [issue.pk for issue in recent])
            )

            began = time.perf_counter()
            try:
                baseline_send(domain, week, counts, recent, smtp_port)
            except Exception:
                # As BLT does: the failure is counted and the loop goes on.
                failed += 1
            send_seconds += time.perf_counter() - began

    return {
        "wall": time.perf_counter() - started,
        "query_seconds": query_seconds,
        "send_seconds": send_seconds,
        "queries": queries.value,
        "failed": failed,
        "digest": combine(lines),
    }


def baseline_figures(domain, week):
    """The report's figures by the same rules as run_weekly, one query each:
    (open, closed, opened this week, closed this week) and the recent
    issues."""
    issues = Issue.objects.filter(
        domain=domain, created__lt=week.end, is_hidden=False
    ).exclude(status="spam")
    counts = (
        issues.exclude(status="closed").count(),
        issues.filter(status="closed").count(),
        issues.filter(created__gte=week.start).count(),
        issues.filter(
            status="closed", closed_date__gte=week.start, closed_date__lt=week.end
        ).count(),
    )
    # BLT counts the total with a query of its own as well.
    issues.count()
    return counts, list(issues.order_by("-created", "-pk")[:10])


def baseline_send(domain, week, counts, recent, smtp_port):
    open_count, closed_count, opened, closed_in_week = counts
    organization = domain.organization.name if domain.organization else domain.name
    lines = [
        f"Weekly report for {organization} ({domain.name}), {week}",
        f"Open issues: {open_count}",
        f"Closed issues: {closed_count}",
        f"Total issues: {open_count + closed_count}",
        f"Opened this week: {opened}",
        f"Closed this week: {closed_in_week}",
        "",
        "Recent issues:",
    ]
    for issue in recent:
        lines.append(
            f"- {issue.description[:100]} ({issue.get_label_display()}, "
            f"{issue.views or 0} views) {settings.SITE_URL}/issue/{issue.pk}/"
        )

    send_mail(
        f"Weekly bug report for {domain.name}",
        "\n".join(lines),
        settings.DEFAULT_FROM_EMAIL,
        [domain.email.strip()],
        connection=get_connection(
            "django.core.mail.backends.smtp.EmailBackend",
            host="127.0.0.1",
            port=smtp_port,
            timeout=30,
        ),
    )


# (b) run_weekly's in-process phases, measured in forked children.


def figures_with_orm(week):
    """Every domain's figures from FigureStream, read in run_weekly's order.

    Returns the aggregate and window statements it ran, so that the same
    SQL can be run bare.
    """
    statements = []

    def record(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    lines = []
    domains = 0
    started = time.perf_counter()
    with connection.execute_wrapper(record):
        stream = figure_stream(week)
        for pk, _, email, is_active, _ in domain_rows():
            figures = stream.figures_for(pk)
            domains += 1
            if is_mailed_by_baseline(email, is_active):
                counts = (
                    figures.open,
                    figures.closed,
                    figures.opened_this_week,
                    figures.closed_this_week,
                )
                lines.append(
                    figures_line(pk, counts, [issue.pk for issue in figures.recent])
                )

    return {
        "wall": time.perf_counter() - started,
        "queries": len(statements),
        "statements": [
            (sql, params)
            for sql, params in statements
            if "COUNT(" in sql or "LATERAL" in sql
        ],
        "domains": domains,
        "digest": combine(lines),
    }


def bare_sql(statements):
    """Run these statements through the kinds of cursor FigureStream uses,
    fetched in chunks, and only count the rows: the per-domain counts
    through an ordinary cursor (PostgreSQL runs no parallel plan for a
    server-side one), the recent issues through a server-side cursor kept
    past the implicit commit."""
    connection.ensure_connection()
    raw = connection.connection
    rows = 0
    started = time.perf_counter()
    for number, (sql, params) in enumerate(statements):
        name = f"bare_{number}" if "LATERAL" in sql else None
        with raw.cursor(name=name, withhold=name is not None) as cursor:
            cursor.execute(sql, params)
            while chunk := cursor.fetchmany(CHUNK_SIZE):
                rows += len(chunk)
    return {"wall": time.perf_counter() - started, "rows": rows}


def rendering(week):
    """Render every report that would be sent, as run_weekly does, timing
    only the rendering; then split a sample into its steps."""
    template = ReportTemplate.load()
    stream = figure_stream(week)
    render_seconds = 0.0
    rendered = html_bytes = 0
    sample = []
    for pk, name, email, is_active, organization in domain_rows():
        report = Report(
            domain_pk=pk,
            domain_name=name,
            organization=organization or name,
            email=email.strip() if email is not None else None,
            is_active=is_active,
            is_subscribed=True,
            extra_recipients=[],
            week=week,
            figures=stream.figures_for(pk),
        )
        if report.skip_reason():
            continue

        began = time.perf_counter()
        _, _, html = template.render(context_for(report))
        render_seconds += time.perf_counter() - began
        rendered += 1
        html_bytes += len(html.encode())
        if len(sample) < RENDER_SAMPLE:
            sample.append(report)

    return {
        "wall": render_seconds,
        "rendered": rendered,
        "html_kb": html_bytes / max(rendered, 1) / 1024,
        "steps": render_steps(template, sample),
    }


def render_steps(template, reports):
    """Milliseconds per report of each step of ReportTemplate.render."""
    inliner = css_inline.CSSInliner(load_remote_stylesheets=False)
    steps = dict.fromkeys(["context", "subject+text", "HTML", "CSS inlining"], 0)
    for report in reports:
        began = time.perf_counter()
        context = context_for(report)
        steps["context"] += time.perf_counter() - began

        began = time.perf_counter()
        plain = Context(context, autoescape=False)
        template.subject.render(plain)
        template.text.render(plain)
        steps["subject+text"] += time.perf_counter() - began

        began = time.perf_counter()
        html = template.html.render(Context(context, autoescape=True))
        steps["HTML"] += time.perf_counter() - began

        began = time.perf_counter()
        inliner.inline(html)
        steps["CSS inlining"] += time.perf_counter() - began

    count = max(len(reports), 1)
    return {step: seconds * 1000 / count for step, seconds in steps.items()}


# The plain SMTP client.


def sample_messages(count):
    """Real queued messages, as the bytes that go over the wire."""
    messages = []
    for email in Email.objects.order_by("pk")[:count]:
        message = email.prepare_email_message()
        encoding = message.encoding or settings.DEFAULT_CHARSET
        # As Django's SMTP backend sends them: an IDN domain in punycode.
        messages.append(
            (
                sanitize_address(message.from_email, encoding),
                [sanitize_address(to, encoding) for to in message.recipients()],
                message.message().as_bytes(linesep="\r\n"),
            )
        )
    return messages


def plain_client(messages, total, processes, port):
    """Send ``total`` of these messages with smtplib from ``processes``
    processes, each over one connection."""
    shares = [total // processes + (n < total % processes) for n in range(processes)]
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        sent = sum(
            pool.starmap(
                _send_plain, [(messages, share, port) for share in shares if share]
            )
        )
    return {"wall": time.perf_counter() - started, "sent": sent}


def _send_plain(messages, count, port):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        for number in range(count):
            from_email, recipients, data = messages[number % len(messages)]
            client.sendmail(from_email, recipients, data)
    return count


# The machine.


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        memory_kb = int(info.readline().split()[1])
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (postgresql,) = cursor.fetchone()
    return {
        "cores": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "ram_gb": memory_kb / 1024 / 1024,
        "postgresql": postgresql.split()[0],
        "python": platform.python_version(),
        "django": django.get_version(),
        "kernel": platform.release(),
    }


def code_version():
    """The commit the checkout is at, and whether the code differs from it."""

    def git(*args):
        return subprocess.run(  # nosec B607 (git from PATH, for the report only)
            ["git", *args],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        # The benchmark itself does not count as a change of the code it
        # measures.
        changed = git(
            "status",
            "--porcelain",
            "--",
            "weekly_reports",
            "blt",
            f":!{Path(__file__).relative_to(settings.BASE_DIR)}",
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"commit {commit}" + (" with uncommitted changes" if changed else "")


def own_rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Command(BaseCommand):
    help = (
        "Benchmark run_weekly against BLT's per-domain loop on a PostgreSQL "
        "database of its own, which it drops and creates again: seed it with "
        "seed_demo, time both sides in one run and print a Markdown table of "
        "wall time, CPU time, queries, peak memory and messages per second. "
        "scripts/benchmark runs it; see the README."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--domains",
            type=int,
            default=10_000,
            metavar="N",
            help="Domains to seed (default: 10,000).",
        )
        parser.add_argument(
            "--issues",
            type=int,
            default=1_000_000,
            metavar="N",
            help="Issues to seed over the domains (default: 1,000,000).",
        )
        parser.add_argument(
            "--week",
            metavar="YYYY-Www",
            help="ISO week to seed and report (default: the last complete week).",
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=len(os.sched_getaffinity(0)),
            metavar="N",
            help="Processes of the parallel runs, measured beside the runs with "
            "one (default: the cores this process may use, at least 2).",
        )
        parser.add_argument(
            "--skip-baseline",
            action="store_true",
            help="Leave out the per-domain loop, which takes long at 100,000 "
            "domains; the speed-ups are then left empty.",
        )
        parser.add_argument(
            "--skip-delivery-comparison",
            action="store_true",
            help="Leave out send_queued_mail and the plain client, and run the "
            "whole job only with --processes: at 100,000 domains they take "
            "over an hour, and delivery's share of the plain client does not "
            "depend on the number of domains.",
        )
        parser.add_argument(
            "--reuse-data",
            action="store_true",
            help="Keep the data of an earlier run with as many domains instead "
            "of seeding again; only the mail and ledger tables are emptied.",
        )
        parser.add_argument(
            "--repeat",
            type=int,
            default=2,
            metavar="N",
            help="Runs of the figures, FigureStream and bare SQL in turn; the "
            "fastest of each counts (default: 2).",
        )
        parser.add_argument(
            "--output",
            metavar="FILE",
            help="Where to write the table as well (default: "
            "var/benchmark-<domains>.md beside manage.py).",
        )
        parser.add_argument(
            "--log-dir",
            metavar="DIR",
            help="Where the output of each manage.py process goes (default: "
            "var/benchmark-logs beside manage.py).",
        )
        parser.add_argument(
            "--drop-database",
            action="store_true",
            help="Drop the benchmark database at the end.",
        )
        # The benchmark runs run_weekly and send_queued_mail through these,
        # in a process of their own, to count the statements of the process
        # and of the workers it forks.
        parser.add_argument("--result-file", help=argparse.SUPPRESS)
        parser.add_argument("--run", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def handle(self, *args, **options):
        if options["run"]:
            return self.run_counted(options["run"], options["result_file"])

        self.check_database()
        self.options = options
        self.domains = options["domains"]
        week = IsoWeek.parse(options["week"]) if options["week"] else None
        self.week = week or IsoWeek.last_complete()
        self.processes = max(2, options["processes"])
        self.work_dir = Path(tempfile.mkdtemp(prefix="weekly-benchmark-"))
        self.log_dir = Path(
            options["log_dir"] or Path(settings.BASE_DIR) / "var" / "benchmark-logs"
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.rows = []
        self.targets = []
        self.peak_mb = 0.0
        self.load_before = os.getloadavg()
        self.code_before = code_version()

        with SMTPSink() as self.smtp:
            self.prepare_data()
            self.machine = machine()
            baseline = None if options["skip_baseline"] else self.measure_baseline()
            self.measure_figures(baseline)
            self.measure_rendering()
            queued = self.measure_queueing()
            if options["skip_delivery_comparison"]:
                self.measure_whole_job(baseline, queued, [self.processes])
            else:
                self.measure_delivery(queued)
                self.measure_whole_job(baseline, queued, [1, self.processes])
        self.load_after = os.getloadavg()
        self.code_after = code_version()

        report = self.report()
        self.stdout.write(report)
        output = Path(
            options["output"]
            or Path(settings.BASE_DIR) / "var" / f"benchmark-{self.domains}.md"
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(report)
        self.stdout.write(f"Written to {output}; logs in {self.log_dir}.")

        if options["drop_database"]:
            self.drop_database()

    # The database.

    def check_database(self):
        database = settings.DATABASES["default"]
        if database["ENGINE"] != "django.db.backends.postgresql":
            raise CommandError(
                "The benchmark needs PostgreSQL: set DATABASE_URL to a "
                "postgres:// URL, or run scripts/benchmark, which does."
            )
        if "benchmark" not in database["NAME"]:
            raise CommandError(
                f"The benchmark drops and creates its database, and "
                f"{database['NAME']!r} does not look like one made for it: point "
                f"DATABASE_URL at a database whose name holds 'benchmark'."
            )

    def admin_statement(self, statement):
        """Run one statement on the server's maintenance database."""
        database = settings.DATABASES["default"]
        connections.close_all()
        try:
            admin = psycopg2.connect(
                dbname="postgres",
                user=database["USER"],
                password=database["PASSWORD"],
                host=database["HOST"],
                port=database["PORT"],
            )
        except psycopg2.OperationalError as error:
            raise CommandError(
                f"PostgreSQL at {database['HOST']}:{database['PORT']} cannot be "
                f"reached ({error}); start it or set DATABASE_URL."
            ) from error
        admin.autocommit = True
        try:
            with admin.cursor() as cursor:
                cursor.execute(statement)
        finally:
            admin.close()

    def drop_database(self):
        name = settings.DATABASES["default"]["NAME"]
        self.admin_statement(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def prepare_data(self):
        if self.options["reuse_data"] and self.has_seeded_data():
            self.empty_mail_tables()
            return

        name = settings.DATABASES["default"]["NAME"]
        self.drop_database()
        self.admin_statement(f'CREATE DATABASE "{name}"')
        self.progress(f"created database {name}; migrating")
        self.manage(["migrate", "--no-input"], "migrate")

        issues = self.options["issues"]
        self.progress(f"seeding {self.domains:,} domains and {issues:,} issues")
        seeding = self.manage(
            [
                "seed_demo",
                "--domains",
                str(self.domains),
                "--issues",
                str(issues),
                "--week",
                str(self.week),
            ],
            "seed_demo",
        )
        # Fresh tables have neither statistics nor a visibility map; both
        # sides are measured on what autovacuum would have made of them.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        self.rows.append(
            Measurement(
                "setup: seed_demo (not compared)",
                seeding["wall"],
                cpu=seeding["cpu"],
                peak_mb=seeding["peak_mb"],
                note=f"{self.domains:,} domains, {issues:,} issues",
            )
        )

    def has_seeded_data(self):
        try:
            return Domain.objects.count() == self.domains
        except DatabaseError:
            return False

    def empty_mail_tables(self):
        tables = ", ".join(
            connection.ops.quote_name(model._meta.db_table)
            for model in (Email, Log, Delivery, Delivery.emails.through)
        )
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {tables} CASCADE")

    def requeue_mail(self):
        """Put every message back in the queue, as if never sent."""
        Log.objects.all().delete()
        Email.objects.update(status=STATUS.queued, number_of_retries=0)
        with connection.cursor() as cursor:
            table = connection.ops.quote_name(Email._meta.db_table)
            cursor.execute(f"VACUUM ANALYZE {table}")

    # Running manage.py.

    def environment(self, processes=1):
        return {
            **os.environ,
            "EMAIL_URL": f"smtp://127.0.0.1:{self.smtp.port}",
            "DEBUG": "false",
            "MAIL_CELERY": "false",
            "WEEKLY_REPORTS_PROCESSES": str(processes),
            # post_office's sender lock lives in the temporary directory: a
            # sender of another checkout must not make this one wait.
            "TMPDIR": str(self.work_dir),
            "PYTHONUNBUFFERED": "1",
        }

    def manage(self, args, label, env=None, counted=False):
        """Run ``manage.py`` with these arguments in a process of its own.

        Return its wall time, and its peak memory and CPU time with those of
        its workers; with ``counted``, also its statements and the seconds
        spent in the command itself.
        """
        connections.close_all()
        result_file = self.work_dir / f"{label}.json"
        command = [sys.executable, str(MANAGE_PY)]
        if counted:
            command += ["benchmark_weekly", "--result-file", str(result_file), "--run"]
        log = self.log_dir / f"{self.domains}-{label}.log"

        started = time.perf_counter()
        with open(log, "w") as output:
            process = subprocess.Popen(
                command + args,
                cwd=settings.BASE_DIR,
                env=env or self.environment(),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            # wait4 reports the process's own peak memory and CPU time, and
            # those of the workers it waited for.
            _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode not in (0, 1):
            raise CommandError(
                f"manage.py {' '.join(args)} exited with {process.returncode}; "
                f"see {log}."
            )

        measured = {
            "wall": wall,
            "peak_mb": usage.ru_maxrss / 1024,
            "cpu": usage.ru_utime + usage.ru_stime,
        }
        if counted:
            inside = json.loads(result_file.read_text())
            measured.update(queries=inside["queries"], busy=inside["seconds"])
        return measured

    def run_counted(self, argv, result_file):
        """Run one management command in this process, counting the
        statements of this process and of the workers it forks."""
        queries = multiprocessing.get_context("fork").Value("q", 0)
        started = time.perf_counter()
        status = 0
        with counting_queries(queries):
            try:
                call_command(*argv, stdout=self.stdout, stderr=self.stderr)
            except SystemExit as exit:
                status = exit.code

        Path(result_file).write_text(
            json.dumps(
                {"queries": queries.value, "seconds": time.perf_counter() - started}
            )
        )
        if status:
            sys.exit(status)

    def progress(self, text):
        self.stderr.write(f"[{time.strftime('%H:%M:%S')}] {text}")

    # The measurements.

    def measure_baseline(self):
        self.progress("(a) baseline: the per-domain loop")
        accepted = self.smtp.accepted.value
        with Watch(self.smtp) as watch:
            run = in_child(baseline_loop, self.week, self.smtp.port)
        baseline = run.value
        arrived = self.smtp.accepted.value - accepted

        self.rows.append(
            Measurement(
                "(a) baseline: queries, 6 per domain",
                baseline["query_seconds"],
                queries=baseline["queries"],
            )
        )
        self.rows.append(
            Measurement(
                "(a) baseline: send_mail, 1 per domain",
                baseline["send_seconds"],
                messages=arrived,
                note=f"a new SMTP connection each; {baseline['failed']} refused",
            )
        )
        self.rows.append(
            Measurement(
                "(a) baseline: whole loop",
                baseline["wall"],
                cpu=run.cpu,
                queries=baseline["queries"],
                peak_mb=run.peak_mb,
                messages=arrived,
                note=watch.note(),
            )
        )
        return baseline

    def measure_figures(self, baseline):
        orm_runs, bare_runs = [], []
        for attempt in range(1, self.options["repeat"] + 1):
            self.progress(f"(b) figures: FigureStream and bare SQL, run {attempt}")
            orm_runs.append(in_child(figures_with_orm, self.week))
            statements = orm_runs[-1].value["statements"]
            bare_runs.append(in_child(bare_sql, statements))
        orm_run = min(orm_runs, key=lambda run: run.value["wall"])
        bare_run = min(bare_runs, key=lambda run: run.value["wall"])
        orm, bare = orm_run.value, bare_run.value

        ratio = orm["wall"] / bare["wall"]
        self.rows.append(
            Measurement(
                "(b) figures: aggregate + LATERAL SQL, bare",
                bare["wall"],
                cpu=bare_run.cpu,
                queries=len(orm["statements"]),
                peak_mb=bare_run.peak_mb,
                note=f"psycopg2, FigureStream's cursors, {bare['rows']:,} rows",
            )
        )
        figures = Measurement(
            "(b) figures: FigureStream, all domains",
            orm["wall"],
            cpu=orm_run.cpu,
            queries=orm["queries"],
            peak_mb=orm_run.peak_mb,
            note=f"{ratio:.2f}× the bare SQL",
        )
        self.rows.append(figures)

        batches = -(-orm["domains"] // conf.get("BATCH_SIZE"))
        self.target(
            f"figures in at most {QUERIES_PER_BATCH} queries per batch",
            orm["queries"] <= QUERIES_PER_BATCH * batches,
            f"{orm['queries']} queries for the whole run of {batches} batches "
            f"of {conf.get('BATCH_SIZE')} domains",
        )
        self.target(
            f"figures no slower than {BARE_SQL_FACTOR}× the bare SQL",
            ratio <= BARE_SQL_FACTOR,
            f"{orm['wall']:.2f} s against {bare['wall']:.2f} s: {ratio:.2f}×",
        )
        if not baseline:
            return

        same = orm["digest"] == baseline["digest"]
        figures.note += "; same figures as (a)" if same else "; FIGURES DIFFER"
        speed_up = baseline["query_seconds"] / orm["wall"]
        figures.versus = f"{speed_up:.1f}×"
        self.target(
            f"figures at least {FIGURES_SPEED_UP}× faster than the per-domain "
            "queries (at 10,000 domains)",
            speed_up >= FIGURES_SPEED_UP,
            f"{baseline['query_seconds']:.1f} s against {orm['wall']:.2f} s: "
            f"{speed_up:.1f}×",
            domains=10_000,
        )

    def measure_rendering(self):
        self.progress("(b) rendering")
        run = in_child(rendering, self.week)
        result = run.value
        steps = ", ".join(f"{name} {ms:.2f}" for name, ms in result["steps"].items())
        self.rows.append(
            Measurement(
                "(b) rendering: ReportTemplate.render",
                result["wall"],
                peak_mb=run.peak_mb,
                messages=result["rendered"],
                note=f"render time alone; ms per report: {steps}; HTML "
                f"{result['html_kb']:.1f} KB",
            )
        )

    def measure_queueing(self):
        queued = 0
        for processes in (1, self.processes):
            self.progress(f"(b) run_weekly --queue-only, PROCESSES={processes}")
            self.empty_mail_tables()
            with Watch(self.smtp) as watch:
                run = self.manage(
                    ["run_weekly", "--week", str(self.week), "--queue-only"],
                    f"queue-only-{processes}",
                    env=self.environment(processes=processes),
                    counted=True,
                )
            queued = Email.objects.count()
            self.rows.append(
                Measurement(
                    f"(b) run_weekly --queue-only, PROCESSES={processes}",
                    run["wall"],
                    cpu=run["cpu"],
                    queries=run["queries"],
                    peak_mb=run["peak_mb"],
                    messages=queued,
                    busy=run["busy"],
                    note=f"{queued:,} messages queued; {watch.note(server=False)}",
                )
            )
            self.peak_mb = max(self.peak_mb, run["peak_mb"])
            self.target(
                f"run_weekly --queue-only under {QUEUE_ONLY_SECONDS} s "
                f"(at 100,000 domains), PROCESSES={processes}",
                run["wall"] < QUEUE_ONLY_SECONDS,
                f"{run['wall']:.1f} s for {self.domains:,} domains",
                domains=100_000,
            )
        return queued

    def measure_delivery(self, queued):
        messages = in_child(sample_messages, PLAIN_SAMPLE).value
        for processes in (1, self.processes):
            self.progress(f"plain smtplib client, {processes} connection(s)")
            with Watch(self.smtp) as watch:
                run = in_child(
                    plain_client, messages, queued, processes, self.smtp.port
                )
            plain = Measurement(
                f"plain smtplib client, {processes} connection(s)",
                run.value["wall"],
                cpu=run.cpu,
                peak_mb=run.peak_mb,
                messages=run.value["sent"],
                note=f"prepared messages, no database; {watch.note()}",
            )
            self.rows.append(plain)

            self.progress(f"(b) send_queued_mail --processes {processes}")
            self.requeue_mail()
            delivered, server_note = self.measure_sending(
                f"(b) delivery: send_queued_mail --processes {processes}",
                ["send_queued_mail", "--processes", str(processes)],
                f"send-queued-mail-{processes}",
            )
            share = delivered.rate / plain.rate
            delivered.note = (
                f"{share:.0%} of the plain client; "
                f"{delivered.cpu / max(delivered.messages, 1) * 1000:.1f} ms CPU "
                f"per message; {server_note}{missing(delivered.messages, queued)}"
            )
            self.rows.append(delivered)
            if processes > 1:
                self.target(
                    f"delivery with {processes} processes at least "
                    f"{PLAIN_CLIENT_SHARE:.0%} of a plain client",
                    share >= PLAIN_CLIENT_SHARE,
                    f"{delivered.rate:,.0f} against {plain.rate:,.0f} messages/s: "
                    f"{share:.0%}",
                )

    def measure_sending(self, label, argv, log_name, env=None):
        """Run a command that sends mail; return its Measurement, counting
        the messages the SMTP server accepted meanwhile, and a note on the
        machine and the server during the run."""
        accepted = self.smtp.accepted.value
        with Watch(self.smtp) as watch:
            run = self.manage(argv, log_name, env=env, counted=True)
        self.peak_mb = max(self.peak_mb, run["peak_mb"])
        measurement = Measurement(
            label,
            run["wall"],
            cpu=run["cpu"],
            queries=run["queries"],
            peak_mb=run["peak_mb"],
            messages=self.smtp.accepted.value - accepted,
            busy=run["busy"],
        )
        return measurement, watch.note()

    def measure_whole_job(self, baseline, queued, process_counts):
        for processes in process_counts:
            self.progress(f"(b) run_weekly, PROCESSES={processes}")
            self.empty_mail_tables()
            whole, server_note = self.measure_sending(
                f"(b) run_weekly, whole job, PROCESSES={processes}",
                ["run_weekly", "--week", str(self.week)],
                f"run-weekly-{processes}",
                env=self.environment(processes=processes),
            )
            whole.note = server_note + missing(whole.messages, queued)
            self.rows.append(whole)
            if baseline:
                speed_up = baseline["wall"] / whole.wall
                whole.versus = f"{speed_up:.1f}×"
                self.target(
                    f"whole job at least {WHOLE_JOB_SPEED_UP}× faster than the "
                    f"per-domain loop (at 10,000 domains), PROCESSES={processes}",
                    speed_up >= WHOLE_JOB_SPEED_UP,
                    f"{baseline['wall']:.1f} s against {whole.wall:.1f} s: "
                    f"{speed_up:.1f}×",
                    domains=10_000,
                )

        self.target(
            f"peak memory of run_weekly and send_queued_mail under {PEAK_MB} MB",
            self.peak_mb < PEAK_MB,
            f"at most {self.peak_mb:.0f} MB, workers included",
        )

    def code_description(self):
        if self.code_after == self.code_before:
            return self.code_before
        # Others may commit while a long run goes on; its rows then measure
        # different code.
        return (
            f"{self.code_before} at the start and {self.code_after} at the end; "
            "the code changed during the run"
        )

    def target(self, name, met, evidence, domains=None):
        """Record a target and whether this run met it; one set for another
        number of ``domains`` is listed but not judged."""
        if domains is not None and domains != self.domains:
            met = None
            evidence += f" (the target is for {domains:,} domains)"
        self.targets.append((name, met, evidence))

    # The report.

    def report(self):
        about = self.machine
        lines = [
            f"## {self.domains:,} domains, {self.options['issues']:,} issues, "
            f"week {self.week}",
            "",
            f"Machine: {about['cores']} cores ({about['cpu']}), "
            f"{about['ram_gb']:.0f} GB RAM, PostgreSQL {about['postgresql']}, "
            f"Python {about['python']}, Django {about['django']}, Linux "
            f"{about['kernel']}. Load average {self.load_before[0]:.2f} before "
            f"and {self.load_after[0]:.2f} after the run: other work on the "
            "machine makes the figures noisy.",
            "",
            f"Code: {self.code_description()}.",
            "",
            *markdown_table(self.rows),
            "",
            TABLE_LEGEND.format(own_mb=own_rss_mb()),
            "",
            "Targets:",
            "",
        ]
        verdicts = {True: "met", False: "MISSED", None: "not judged"}
        for name, met, evidence in self.targets:
            lines.append(f"- {verdicts[met]}: {name}; {evidence}.")
        return "\n".join(lines) + "\n"
