from __future__ import annotations

from django.urls import path

from . import views

app_name = "verification"

urlpatterns = [
    path("", views.verify, name="verify"),
    path("session/", views.session_start, name="session"),
    path("sandbox/", views.sandbox_inbox, name="sandbox_inbox"),
    path("sandbox/codes.json", views.sandbox_codes, name="sandbox_codes"),
    path("sandbox/passport.json", views.sandbox_passport, name="sandbox_passport"),
    path("gateway/report/", views.gateway_report, name="gateway_report"),
]
