from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from .models import Delivery, Subscription


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["domain", "is_subscribed", "changed_at", "changed_by"]
    list_editable = ["is_subscribed"]
    list_filter = ["is_subscribed", "changed_by"]
    search_fields = ["domain__name", "domain__organization__name"]
    raw_id_fields = ["domain"]
    readonly_fields = ["changed_at", "changed_by"]

    def save_model(self, request, obj, form, change):
        if "is_subscribed" in form.changed_data or not change:
            obj.changed_by = Subscription.Source.ADMIN
            obj.changed_at = timezone.now()
        super().save_model(request, obj, form, change)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """The ledger, read-only: it is the record of what went out."""

    list_display = ["week", "domain_name", "recipients", "status", "reason", "updated"]
    list_filter = ["status", "week", "reason"]
    search_fields = ["domain_name", "recipients"]
    date_hierarchy = "created"
    readonly_fields = ["messages"]
    exclude = ["emails"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="messages")
    def messages(self, obj):
        links = (
            (reverse("admin:post_office_email_change", args=[email.pk]), email)
            for email in obj.emails.order_by("pk")
        )
        return format_html_join(mark_safe("<br>"), '<a href="{}">{}</a>', links)
