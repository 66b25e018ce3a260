"""Create the default ``weekly_report`` EmailTemplate from the files shipped
in ``weekly_reports/templates/weekly_reports/email/``.

An existing template of that name (a project may have edited it already) is
left alone; reversing removes the template only if nobody changed it.
"""

from pathlib import Path

from django.db import migrations

TEMPLATE_NAME = "weekly_report"
SOURCE_DIR = (
    Path(__file__).resolve().parent.parent / "templates" / "weekly_reports" / "email"
)


def shipped_parts():
    def read(filename):
        return (SOURCE_DIR / filename).read_text(encoding="utf-8")

    return {
        "subject": " ".join(read("subject.txt").split()),
        "content": read("body.txt"),
        "html_content": read("body.html"),
    }


def create_template(apps, schema_editor):
    EmailTemplate = apps.get_model("post_office", "EmailTemplate")
    EmailTemplate.objects.get_or_create(
        name=TEMPLATE_NAME,
        language="",
        default_template=None,
        defaults={
            "description": "Weekly bug statistics mailed to each domain.",
            **shipped_parts(),
        },
    )


def remove_template(apps, schema_editor):
    EmailTemplate = apps.get_model("post_office", "EmailTemplate")
    EmailTemplate.objects.filter(
        name=TEMPLATE_NAME, language="", default_template=None, **shipped_parts()
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("weekly_reports", "0001_initial"),
        ("post_office", "0014_alter_email_recipient_delivery_status_and_more"),
    ]

    operations = [migrations.RunPython(create_template, remove_template)]
