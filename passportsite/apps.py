from django.apps import AppConfig


class PassportsiteConfig(AppConfig):
    name = "passportsite"
    verbose_name = "passportsite"
