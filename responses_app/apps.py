from django.apps import AppConfig


class ResponsesAppConfig(AppConfig):
    name = "responses_app"
    verbose_name = "Canned responses"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from responses_app import signals  # noqa: F401  (registers the receivers)
