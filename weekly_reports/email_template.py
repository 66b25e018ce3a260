"""The report's post_office EmailTemplate: its shipped default and its cache.

post_office caches templates under ``"<name>:<language>"`` but clears only
``"<name>"`` on save, which is the same key for the default language alone; a
translation's entry, and any entry in a cache that other processes share,
outlives an edit. Whoever saves the template here clears every entry.
"""

from pathlib import Path

from django.conf import settings
from post_office import cache as post_office_cache

SHIPPED_DIR = Path(__file__).resolve().parent / "templates" / "weekly_reports" / "email"


def shipped_parts():
    """The subject, text and HTML that the app ships, as migration 0002
    stores them."""

    def read(filename):
        return (SHIPPED_DIR / filename).read_text(encoding="utf-8")

    return {
        "subject": " ".join(read("subject.txt").split()),
        "content": read("body.txt"),
        "html_content": read("body.html"),
    }


def is_shipped_default(email_template):
    parts = shipped_parts()
    return all(getattr(email_template, field) == parts[field] for field in parts)


def restore_shipped_default(email_template):
    """Put the shipped subject, text and HTML back and save."""
    for field, value in shipped_parts().items():
        setattr(email_template, field, value)
    email_template.save()
    forget_cached(email_template.name)


def forget_cached(*names):
    """Drop post_office's cached copies of these templates, in every
    language, so that no process renders an edited template from cache."""
    if post_office_cache.cache_backend is None:
        return

    languages = ["", *(code for code, _ in settings.LANGUAGES)]
    for name in names:
        for language in languages:
            post_office_cache.delete(f"{name}:{language}")
