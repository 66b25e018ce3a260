"""A second admin entry for the host's domain model, showing report state.

The host registers its own admin for its domain model, and one admin site
takes one admin per model; a proxy gives the weekly reports their own list of
every domain without touching the host's table or admin.
"""

from importlib import import_module

from django.apps import apps
from django.utils.module_loading import module_has_submodule

from . import conf


def _concrete_domain_model():
    """Return the host's domain model while models are still being loaded.

    A proxy needs its concrete class when the class statement runs, which may
    be before Django reaches the host app in INSTALLED_APPS; importing that
    app's models first is what ``from website.models import Domain`` at the
    top of a models module would do.
    """
    app_label = conf.domain_model_name().partition(".")[0]
    app_config = apps.app_configs.get(app_label)
    if app_config is not None and module_has_submodule(app_config.module, "models"):
        import_module(f"{app_config.name}.models")

    # Raises ImproperlyConfigured naming the setting when it is wrong.
    return conf.get_domain_model()


class ReportDomain(_concrete_domain_model()):
    """A domain, seen from the weekly reports: its state, its recipients."""

    class Meta:
        proxy = True
        verbose_name = "domain"
        verbose_name_plural = "domains"
