from django.conf import settings
from django.db import migrations

# The host's domain model, named the way AUTH_USER_MODEL is: the migration
# stays valid in any project that points this setting at its own model.
DOMAIN_MODEL = getattr(settings, "WEEKLY_REPORTS_DOMAIN_MODEL", "website.Domain")


class Migration(migrations.Migration):
    dependencies = [
        migrations.swappable_dependency(DOMAIN_MODEL),
        ("weekly_reports", "0002_default_template"),
    ]

    operations = [
        migrations.CreateModel(
            name="ReportDomain",
            fields=[],
            options={
                "verbose_name": "domain",
                "verbose_name_plural": "domains",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=(DOMAIN_MODEL,),
        ),
    ]
