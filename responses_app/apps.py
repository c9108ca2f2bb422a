from django.apps import AppConfig


class ResponsesAppConfig(AppConfig):
    name = "responses_app"
    verbose_name = "Canned responses"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from responses_app import signals  # noqa: F401  (registers the loaddata receivers)
        from responses_app.canned.index import on_sets_changed
        from responses_app.models import sets_changed

        sets_changed.connect(on_sets_changed, dispatch_uid="mockllm-index")
