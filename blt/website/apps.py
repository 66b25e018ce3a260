from django.apps import AppConfig


class WebsiteConfig(AppConfig):
    """Stand-in for OWASP BLT's own ``website`` app."""

    name = "blt.website"
    label = "website"
    verbose_name = "website"
    default_auto_field = "django.db.models.AutoField"
