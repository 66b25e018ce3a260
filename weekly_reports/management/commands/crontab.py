"""django-crontab's ``crontab`` command, made safe to rely on.

django-crontab 0.7.1 reports success when there is no crontab program or when
the program refuses the new table, exits 0 when a job fails, writes paths
unquoted, runs the default settings unless told otherwise, and cannot
``add`` again once ``CRONJOBS`` changed. This command keeps its sub-commands
(``add``, ``show``, ``remove``, ``run HASH``) and its output, and fixes each
of those gaps where it arises. It takes precedence over django-crontab's
because ``weekly_reports`` comes first in ``INSTALLED_APPS``.
"""

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shlex
import subprocess
import tempfile
from importlib import import_module

from django.conf import settings
from django.core.management.base import CommandError
from django_crontab.crontab import Crontab as BaseCrontab
from django_crontab.management.commands.crontab import Command as BaseCommand

logger = logging.getLogger(__name__)

JOB_HASH = re.compile(r"\bcrontab run ([0-9a-f]{32})\b")


def job_hash(job):
    """Return the hash that names ``job`` in its crontab line.

    django-crontab hashes the whole entry, schedule included. The schedule
    comes from the environment here, so a schedule exported in the shell
    that ran ``crontab add`` but absent from cron's environment changed the
    hash, and every run failed with "No job with hash". What the job does
    identifies it; when it runs is cron's business.
    """
    encoded = json.JSONEncoder(sort_keys=True).encode(list(job[1:]))
    return hashlib.md5(encoded.encode(), usedforsecurity=False).hexdigest()


def _cron_text(text, what):
    # Cron ends a command at its first unescaped "%" and ends the line at a
    # newline, so either would silently cut the job short.
    if "\n" in text or "\r" in text:
        raise CommandError(f"The crontab line cannot hold {what}: it has a newline.")
    if "\\%" in text:
        raise CommandError(
            f"The crontab line cannot hold {what}: cron has no way to write a "
            "backslash followed by '%'."
        )
    return text.replace("%", "\\%")


def _exit_status(code):
    # sys.exit(None) succeeds and sys.exit("message") exits 1, as Python does
    # when such a SystemExit ends the interpreter.
    if code is None:
        return 0
    # The shell sees only the low byte, so 256 would read as success.
    if isinstance(code, int) and 0 <= code <= 255:
        return code
    return 1


class Crontab(BaseCrontab):
    """Read, change and write the crontab of the user running the command.

    Only lines that end with this install's comment are read or changed, so
    other jobs, including another checkout of the same project, are left
    alone.
    """

    def __init__(self, stdout, **options):
        super().__init__(**options)
        self.stdout = stdout

    def __exit__(self, exc_type, exc_value, traceback):
        # django-crontab writes the table back even when building it failed
        # halfway, which installed a crontab with this install's jobs removed.
        if exc_type is None and not self.readonly:
            self.write()

    @property
    def project_dir(self):
        return os.path.dirname(self.manage_path)

    @property
    def manage_path(self):
        path = getattr(self.settings, "DJANGO_MANAGE_PATH", None)
        if not path or not os.path.isfile(path):
            raise CommandError(
                f"No manage.py found at {path!r}. Set CRONTAB_DJANGO_MANAGE_PATH "
                "to its absolute path."
            )
        return os.path.abspath(path)

    @property
    def comment(self):
        # django-crontab's default comment names the project only, so two
        # checkouts on one machine removed each other's jobs.
        comment = getattr(settings, "CRONTAB_COMMENT", None)
        return comment or f"django-cronjobs for {self.project_dir}"

    @property
    def settings_module(self):
        # Without CRONTAB_DJANGO_SETTINGS_MODULE django-crontab wrote no
        # --settings, and cron ran whatever manage.py defaults to.
        module = self.settings.DJANGO_SETTINGS_MODULE or settings.SETTINGS_MODULE
        if not module:
            raise CommandError(
                "Set CRONTAB_DJANGO_SETTINGS_MODULE to the settings module cron "
                "must run the jobs with."
            )
        return module

    @property
    def log_file(self):
        # Cron mails a job's output, often to a mailbox nobody reads; by
        # default it is kept beside the project instead.
        path = getattr(settings, "CRONTAB_LOG_FILE", os.path.join("var", "cron.log"))
        return os.path.join(self.project_dir, path) if path else None

    def read(self):
        result = self._run_crontab("-l")

        # An empty crontab is not an error: Debian's and cronie's crontab say
        # "no crontab for USER" and exit 1.
        if result.returncode and "no crontab for" not in result.stderr:
            raise CommandError(f"{self._program} -l failed: {self._error_of(result)}.")
        self.crontab_lines = result.stdout.splitlines(keepends=True)

    def write(self):
        # A last line without its newline would swallow the next one added.
        text = "".join(
            line if line.endswith("\n") else line + "\n" for line in self.crontab_lines
        )

        result = self._run_crontab("-", input=text)
        if result.returncode:
            raise CommandError(
                f"{self._program} refused the new crontab, which was left as it "
                f"was: {self._error_of(result)}. Check the schedules in CRONJOBS."
            )

    def add_jobs(self):
        log_file = self.log_file
        if log_file:
            os.makedirs(os.path.dirname(log_file), exist_ok=True)

        for job in self.settings.CRONJOBS:
            self.crontab_lines.append(self.line_for(job))
            if self.verbosity >= 1:
                self.stdout.write(f"  adding cronjob: ({job_hash(job)}) -> {job}")

    def line_for(self, job):
        """Return the crontab line that runs ``job`` through this command.

        Cron starts jobs in the user's home directory with a bare
        environment. The line therefore enters the project directory, where
        the settings find their ``.env`` file, and names the Python of this
        virtualenv and ``manage.py`` by their absolute paths, each quoted so
        that a space or a quote in a path cannot split or break the command.
        """
        quote = shlex.quote
        words = [
            quote(os.path.abspath(self.settings.PYTHON_EXECUTABLE)),
            quote(self.manage_path),
            "crontab",
            "run",
            job_hash(job),
            quote(f"--settings={self.settings_module}"),
        ]
        words.extend(
            filter(None, [self._job_suffix(job), self.settings.COMMAND_SUFFIX])
        )
        command = " ".join(filter(None, [self.settings.COMMAND_PREFIX, *words]))
        command = f"{{ cd {quote(self.project_dir)} && {command}; }}"

        # The group sends a failing "cd" to the log as well, so a moved
        # project shows up there rather than in a mailbox nobody reads.
        if self.log_file:
            command += f" >> {quote(self.log_file)} 2>&1"
        return self.settings.CRONTAB_LINE_PATTERN % {
            "time": _cron_text(job[0], "the schedule"),
            "command": _cron_text(command, "the command"),
            "comment": _cron_text(self.comment, "the comment"),
        }

    def show_jobs(self):
        self.stdout.write("Currently active jobs in crontab:")
        lines = self._own_lines()
        for line in lines:
            if self.verbosity >= 1:
                self.stdout.write(self._describe(line))
        if not lines:
            self.stdout.write("  none; 'python manage.py crontab add' installs them")

    def remove_jobs(self):
        for line in self._own_lines():
            self.crontab_lines.remove(line)
            if self.verbosity >= 1:
                self.stdout.write(f"removing cronjob: {self._describe(line)}")

    def run_job(self, hash_):
        job = self.find_job(hash_)
        function = self._import(job[1])
        args = job[2] if len(job) > 2 and not isinstance(job[2], str) else []
        kwargs = job[3] if len(job) > 3 else {}

        with self._lock(hash_) as locked:
            if not locked:
                logger.warning("Cron job %s is still running; skipped.", job)
                return
            self._call(job, function, args, kwargs)

    def find_job(self, hash_):
        for job in self.settings.CRONJOBS:
            if job_hash(job) == hash_:
                return job
        raise CommandError(
            f"No job with hash {hash_} in CRONJOBS: the crontab is out of date. "
            'Run "python manage.py crontab add" again.'
        )

    def _call(self, job, function, args, kwargs):
        # django-crontab swallowed every exception, SystemExit included, so a
        # failed run_weekly (which exits 1) looked like a success to cron.
        try:
            function(*args, **kwargs)
        except SystemExit as exit:
            status = _exit_status(exit.code)
            if status:
                logger.error("Cron job %s exited with status %s.", job, exit.code)
                raise CommandError(
                    f"Cron job {job} exited with status {exit.code}.",
                    returncode=status,
                ) from exit
        except CommandError as error:
            logger.error("Cron job %s failed: %s", job, error)
            raise CommandError(
                f"Cron job {job} failed: {error}", returncode=error.returncode
            ) from error
        except Exception as error:
            logger.exception("Cron job %s failed.", job)
            raise CommandError(f"Cron job {job} failed: {error!r}") from error

    @contextlib.contextmanager
    def _lock(self, hash_):
        if not self.settings.LOCK_JOBS:
            yield True
            return

        # django-crontab named the lock after the job alone, so the same job
        # of another install on this machine was skipped as "still running".
        install = hashlib.md5(self.comment.encode(), usedforsecurity=False)
        name = f"django_crontab_{install.hexdigest()[:12]}_{hash_}.lock"
        with open(os.path.join(tempfile.gettempdir(), name), "w") as lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
            else:
                yield True

    def _import(self, dotted_path):
        module_path, _, name = dotted_path.rpartition(".")
        try:
            return getattr(import_module(module_path), name)
        except (ImportError, AttributeError, ValueError) as error:
            raise CommandError(
                f"Cannot import the cron job function {dotted_path!r}: {error}."
            ) from error

    def _own_lines(self):
        # django-crontab took whatever follows the first "#" as the comment,
        # so a "#" in a project path hid the line from show and remove.
        ending = " # " + _cron_text(self.comment, "the comment")
        return [
            line for line in self.crontab_lines if line.rstrip("\r\n").endswith(ending)
        ]

    def _describe(self, line):
        match = JOB_HASH.search(line)
        if not match:
            return f"(unknown) -> {line.strip()}"

        hash_ = match[1]
        try:
            job = self.find_job(hash_)
        except CommandError:
            # A job dropped from CRONJOBS must still be shown and removed:
            # django-crontab raised here, which made "add" fail for good.
            job = "not in CRONJOBS any more"
        return f"({hash_}) -> {job}"

    @staticmethod
    def _job_suffix(job):
        if len(job) > 2 and isinstance(job[2], str):
            return job[2]
        return job[4] if len(job) > 4 else ""

    @property
    def _program(self):
        return self.settings.CRONTAB_EXECUTABLE

    def _run_crontab(self, *args, input=None):
        # django-crontab went through os.popen and os.system and never looked
        # at the exit status, so a missing program or a refused table still
        # printed success. The C locale keeps crontab's messages recognisable.
        # CRONTAB_EXECUTABLE went through the shell there, so it may carry
        # options ("crontab -u www-data") and is split into words here.
        argv = [*shlex.split(self._program), *args]
        try:
            return subprocess.run(
                argv,
                input=input,
                capture_output=True,
                text=True,
                env={**os.environ, "LC_ALL": "C"},
                check=False,
            )
        except OSError as error:
            raise CommandError(
                f"Cannot run the crontab program {self._program!r}: "
                f"{error.strerror}. Install cron (on Debian: apt-get install "
                "cron) or set CRONTAB_EXECUTABLE to its path."
            ) from error

    @staticmethod
    def _error_of(result):
        message = "; ".join(result.stderr.strip().splitlines()).rstrip(".")
        return message or f"exit status {result.returncode}"


class Command(BaseCommand):
    help = (
        "Install (add), list (show) or uninstall (remove) the jobs of the "
        "CRONJOBS setting in the crontab of the current user; cron itself "
        "calls 'run HASH'. Only this project's lines are touched. Exits "
        "non-zero when the crontab cannot be read or written, or when the job "
        "run failed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "subcommand",
            choices=["add", "show", "remove", "run"],
            help="add replaces this project's lines with the current CRONJOBS; "
            "show lists them; remove deletes them; run executes one job.",
        )
        parser.add_argument(
            "jobhash",
            nargs="?",
            help="With run: the hash of the job, as written in the crontab line.",
        )

    def handle(self, *args, **options):
        subcommand = options["subcommand"]
        verbosity = options["verbosity"]

        if subcommand == "run":
            if not options["jobhash"]:
                raise CommandError("crontab run needs the hash of a job.")
            crontab = Crontab(self.stdout, verbosity=verbosity, readonly=True)
            crontab.run_job(options["jobhash"])
            return

        readonly = subcommand == "show"
        with Crontab(self.stdout, verbosity=verbosity, readonly=readonly) as crontab:
            if subcommand == "show":
                crontab.show_jobs()
                return
            crontab.remove_jobs()
            if subcommand == "add":
                crontab.add_jobs()
