"""WebSocket routes. Host projects add these to their ASGI router, inside
``AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(...)))``."""

from __future__ import annotations

from django.urls import path

from .consumers import VerificationConsumer

websocket_urlpatterns = [
    path("ws/verification/", VerificationConsumer.as_asgi()),
]
