from django.urls import path

from . import views

app_name = "weekly_reports"

urlpatterns = [
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("resubscribe/<str:token>/", views.resubscribe, name="resubscribe"),
    path("preview/<str:domain>/", views.preview, name="preview"),
]
