from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("weekly-reports/", include("weekly_reports.urls")),
]
