"""Settings of the BLT host project.

Everything that differs between a laptop, CI and production comes from the
environment or from a ``.env`` file beside ``manage.py``. Cron starts jobs
with an almost empty environment, so the ``.env`` file is what keeps a
scheduled run on the same database and mail server as an interactive shell.
"""

import hashlib
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


_LARGEST_COUNT = 2**31 - 1


class Env(environ.Env):
    """django-environ's reader, whose errors name the variable at fault:
    its own say only "invalid literal for int() with base 10: 'abc'"."""

    def get_value(self, var, *args, **kwargs):
        try:
            return super().get_value(var, *args, **kwargs)
        except (ValueError, TypeError) as error:
            raise ImproperlyConfigured(f"{var} is invalid: {error}") from error

    def count(self, var, default, minimum=0):
        """A whole number from ``minimum`` up to what a C int holds, the most
        that timedelta() and a socket's time-out take."""
        value = self.int(var, default=default)
        if not minimum <= value <= _LARGEST_COUNT:
            raise ImproperlyConfigured(
                f"{var} must be from {minimum} to {_LARGEST_COUNT}, not {value}."
            )
        return value

    @staticmethod
    def parsed_url(var, parse, url):
        """``url``, the value of ``var``, parsed by ``parse``; its errors
        name ``var``."""
        try:
            return parse(url)
        except (ImproperlyConfigured, ValueError, TypeError, KeyError) as error:
            raise ImproperlyConfigured(f"{var} is invalid: {error}") from error


env = Env()
Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env.str("SECRET_KEY", default="insecure-development-key-change-me")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

SITE_URL = env.str("SITE_URL", default="http://localhost:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[SITE_URL])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "blt.website",
    # Listed before django_crontab so that its hardened ``crontab`` command
    # takes precedence over the original one.
    "weekly_reports",
    "post_office",
    "django_crontab",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "blt.urls"
WSGI_APPLICATION = "blt.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_database_url = env.str("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
# The app runs on PostgreSQL and SQLite; other backends' drivers are not in
# requirements.txt, and Django would fail on them with a traceback.
_database_scheme = urlsplit(_database_url).scheme
if _database_scheme not in ("postgres", "postgresql", "sqlite"):
    raise ImproperlyConfigured(
        f"DATABASE_URL has the unknown scheme {_database_scheme!r}; "
        "use postgres://USER@HOST:PORT/NAME or sqlite:////absolute/path."
    )
DATABASES = {
    "default": env.parsed_url("DATABASE_URL", env.db_url_config, _database_url)
}
# Several processes (cron, a web server, delivery workers) share the SQLite
# file of the demo. Write-ahead logging lets them write while a run streams
# its domains, and waiting for a lock beats failing with "database is
# locked"; an immediate transaction takes the write lock up front, so two
# writers never deadlock upgrading a read lock.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=30,
        init_command="PRAGMA journal_mode=WAL;",
        transaction_mode="IMMEDIATE",
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
if not TIME_ZONE:
    # Django checks a time zone's name only when it is not empty.
    raise ImproperlyConfigured("TIME_ZONE is empty; name a zone such as UTC.")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

# Mail. Without EMAIL_URL every message lands in files beside manage.py, so a
# copy of the production database can never mail real organizations by
# accident. ``filemail:///dir`` is a folder beside manage.py,
# ``filemail:////abs/dir`` an absolute one.
_email = env.parsed_url(
    "EMAIL_URL",
    env.email_url_config,
    env.str("EMAIL_URL", default="filemail:///sent_mail"),
)
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
EMAIL_PORT = _email["EMAIL_PORT"] or 25
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
EMAIL_FILE_PATH = BASE_DIR / (_email["EMAIL_FILE_PATH"] or "sent_mail")
# A mail server that stops answering must not hang the weekly run forever.
EMAIL_TIMEOUT = env.count("EMAIL_TIMEOUT", default=30, minimum=1)
DEFAULT_FROM_EMAIL = env.str(
    "DEFAULT_FROM_EMAIL", default="OWASP BLT <reports@blt.example>"
)
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
ADMINS = [("BLT admins", address) for address in env.list("ADMINS", default=[])]

POST_OFFICE = {
    # A 4xx answer or a dropped connection is retried on this schedule;
    # post_office itself defaults to no retry at all.
    "MAX_RETRIES": env.count("MAIL_MAX_RETRIES", default=4),
    "RETRY_INTERVAL": timedelta(minutes=env.count("MAIL_RETRY_MINUTES", default=15)),
    "BATCH_SIZE": 100,
    "LOG_LEVEL": 2,
    "CELERY_ENABLED": env.bool("MAIL_CELERY", default=False),
    # post_office's sender lock lives in /tmp under one fixed name; two
    # installs on one machine must not wait for each other's sender.
    "LOCK_FILE_NAME": "post_office_"
    + hashlib.sha256(str(BASE_DIR).encode()).hexdigest()[:12],
}
_override = env.list("MAIL_OVERRIDE_RECIPIENTS", default=[])
if _override:
    POST_OFFICE["OVERRIDE_RECIPIENTS"] = _override
# A cached template can outlive an admin edit in a long-lived process.
POST_OFFICE_TEMPLATE_CACHE = False

# Celery, used when MAIL_CELERY is true: workers queue and deliver batches.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=CELERY_BROKER_URL)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="weekly_reports")
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

WEEKLY_REPORTS_DOMAIN_MODEL = "website.Domain"
WEEKLY_REPORTS_ISSUE_MODEL = "website.Issue"
WEEKLY_REPORTS = {
    "LIST_ID_DOMAIN": f"weekly-reports.{urlsplit(SITE_URL).hostname}",
    "BATCH_SIZE": env.int("WEEKLY_REPORTS_BATCH_SIZE", default=500),
    "PROCESSES": env.int("WEEKLY_REPORTS_PROCESSES", default=1),
    "DELIVERY_PROCESSES": env.int("WEEKLY_REPORTS_DELIVERY_PROCESSES", default=1),
    "SCHEDULE": env.str("WEEKLY_REPORTS_SCHEDULE", default="0 9 * * 1"),
    "RETRY_SCHEDULE": env.str(
        "WEEKLY_REPORTS_RETRY_SCHEDULE", default="5-59/10 * * * *"
    ),
}

# django-crontab, driven by weekly_reports' hardened ``crontab`` command.
CRONTAB_DJANGO_SETTINGS_MODULE = "blt.settings"
CRONTAB_DJANGO_MANAGE_PATH = str(BASE_DIR / "manage.py")
CRONTAB_COMMENT = f"weekly_reports for {BASE_DIR}"
CRONTAB_LOG_FILE = env.str(
    "CRONTAB_LOG_FILE", default=str(BASE_DIR / "var" / "cron.log")
)
CRONTAB_LOCK_JOBS = True
CRONTAB_EXECUTABLE = env.str("CRONTAB_EXECUTABLE", default="/usr/bin/crontab")
CRONJOBS = [
    (
        WEEKLY_REPORTS["SCHEDULE"],
        "django.core.management.call_command",
        ["run_weekly"],
        {},
    ),
    (
        WEEKLY_REPORTS["RETRY_SCHEDULE"],
        "django.core.management.call_command",
        ["send_queued_mail"],
        {},
    ),
    # post_office keeps every message and its log until this deletes them;
    # the ledger keeps its rows, which only lose their links to the messages.
    (
        env.str("MAIL_CLEANUP_SCHEDULE", default="30 3 * * *"),
        "django.core.management.call_command",
        ["cleanup_mail", "--days", str(env.count("MAIL_KEEP_DAYS", default=90))],
        {},
    ),
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
        },
    },
    "loggers": {
        "weekly_reports": {
            "handlers": ["console", "mail_admins"],
            "level": env.str("LOG_LEVEL", default="INFO"),
            "propagate": False,
        },
    },
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool(
        "SECURE_COOKIES", default=SITE_URL.startswith("https")
    )
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    # A site served over https redirects plain http there and tells browsers
    # to stay on https (HSTS); raise SECURE_HSTS_SECONDS to a year once that
    # works. Behind a proxy that ends TLS, set SECURE_PROXY_SSL_HEADER=true
    # (the proxy sends X-Forwarded-Proto), or the redirect never ends.
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=SESSION_COOKIE_SECURE)
    SECURE_HSTS_SECONDS = env.int(
        "SECURE_HSTS_SECONDS", default=3600 if SECURE_SSL_REDIRECT else 0
    )
    if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# HSTS for every subdomain, or on the browsers' preload list, binds all the
# organization's other sites too: that is the operator's choice, made with
# these two variables, so Django's reminders about them are silenced.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False
)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]
