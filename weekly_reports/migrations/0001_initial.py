import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

# The host's domain model, named the way AUTH_USER_MODEL is: the migration
# stays valid in any project that points this setting at its own model.
DOMAIN_MODEL = getattr(settings, "WEEKLY_REPORTS_DOMAIN_MODEL", "website.Domain")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("post_office", "0014_alter_email_recipient_delivery_status_and_more"),
        migrations.swappable_dependency(DOMAIN_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Subscription",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                (
                    "is_subscribed",
                    models.BooleanField(
                        default=True, verbose_name="receives the report"
                    ),
                ),
                (
                    "extra_recipients",
                    models.TextField(
                        blank=True,
                        help_text=(
                            "Further addresses that receive this domain's report, "
                            "one per line, besides the domain's own email."
                        ),
                    ),
                ),
                (
                    "changed_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="changed"
                    ),
                ),
                (
                    "changed_by",
                    models.CharField(
                        choices=[
                            ("admin", "admin"),
                            ("unsubscribe_link", "unsubscribe link"),
                            ("resubscribe_link", "subscribe-again link"),
                            ("default", "default"),
                        ],
                        default="default",
                        max_length=20,
                        verbose_name="changed through",
                    ),
                ),
                (
                    "domain",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="weekly_report_subscription",
                        to=DOMAIN_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "report subscription",
            },
        ),
        migrations.CreateModel(
            name="Delivery",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                (
                    "domain_name",
                    models.CharField(
                        help_text=(
                            "Kept so that the row still names its domain once "
                            "the domain is deleted."
                        ),
                        max_length=255,
                    ),
                ),
                (
                    "week",
                    models.CharField(
                        help_text="ISO week, such as 2026-W48.", max_length=8
                    ),
                ),
                ("recipients", models.TextField(blank=True)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "queued"),
                            ("sent", "sent"),
                            ("failed", "failed"),
                            ("skipped", "skipped"),
                        ],
                        max_length=10,
                    ),
                ),
                (
                    "reason",
                    models.CharField(
                        blank=True,
                        help_text="Why the report was skipped.",
                        max_length=20,
                    ),
                ),
                (
                    "error",
                    models.TextField(
                        blank=True, help_text="Why the last delivery failed."
                    ),
                ),
                ("created", models.DateTimeField(auto_now_add=True)),
                ("updated", models.DateTimeField(auto_now=True)),
                (
                    "domain",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="weekly_report_deliveries",
                        to=DOMAIN_MODEL,
                    ),
                ),
                (
                    "emails",
                    models.ManyToManyField(
                        blank=True,
                        help_text="The queued messages of every attempt.",
                        related_name="weekly_report_deliveries",
                        to="post_office.email",
                    ),
                ),
            ],
            options={
                "verbose_name": "report delivery",
                "verbose_name_plural": "report deliveries",
                "indexes": [
                    models.Index(
                        fields=["week", "status"], name="weekly_repo_week_bf8243_idx"
                    )
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("domain", "week"),
                        name="weekly_reports_one_per_domain_week",
                    )
                ],
            },
        ),
    ]
