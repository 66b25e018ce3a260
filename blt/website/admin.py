from django.contrib import admin

from .models import Domain, Issue, Organization


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "url", "email"]
    search_fields = ["name", "url"]


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "email", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "organization__name", "email"]
    autocomplete_fields = ["organization"]


@admin.register(Issue)
class IssueAdmin(admin.ModelAdmin):
    list_display = ["pk", "domain", "status", "label", "views", "created", "is_hidden"]
    list_filter = ["status", "label", "is_hidden"]
    search_fields = ["description", "domain__name"]
    raw_id_fields = ["domain"]
    date_hierarchy = "created"
