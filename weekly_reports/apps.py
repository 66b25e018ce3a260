from django.apps import AppConfig


class WeeklyReportsConfig(AppConfig):
    name = "weekly_reports"
    verbose_name = "weekly reports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
