from django import forms
from django.contrib import admin
from django.db import models

from .models import Domain, Issue, Organization


class HttpsByDefault:
    """A typed URL without a scheme means https, as Django 6 will assume."""

    formfield_overrides = {
        models.URLField: {"form_class": forms.URLField, "assume_scheme": "https"}
    }


@admin.register(Organization)
class OrganizationAdmin(HttpsByDefault, admin.ModelAdmin):
    list_display = ["name", "url", "email"]
    search_fields = ["name", "url"]


@admin.register(Domain)
class DomainAdmin(HttpsByDefault, admin.ModelAdmin):
    list_display = ["name", "organization", "email", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "organization__name", "email"]
    autocomplete_fields = ["organization"]


@admin.register(Issue)
class IssueAdmin(HttpsByDefault, admin.ModelAdmin):
    list_display = ["pk", "domain", "status", "label", "views", "created", "is_hidden"]
    list_filter = ["status", "label", "is_hidden"]
    search_fields = ["description", "domain__name"]
    raw_id_fields = ["domain"]
    date_hierarchy = "created"
