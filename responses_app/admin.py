"""Browse and edit canned prompts. Any save or delete here is served on the next request."""
from __future__ import annotations

import json
from typing import Any

import orjson
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from responses_app.canned.index import canned_index
from responses_app.models import (
    ApiKey,
    CannedResponse,
    JournalEntry,
    RecordedExchange,
    ResponseSet,
    SetVersion,
    Source,
)
from responses_app.providers import anthropic_messages as anthropic
from responses_app.providers import bedrock_converse as bedrock
from responses_app.providers import gemini_generate as gemini
from responses_app.providers import ollama_chat
from responses_app.providers import openai_chat as openai
from responses_app.providers import openai_responses as responses
from responses_app.providers.common import APIError

TRY_PROVIDERS = {
    "openai": ("OpenAI chat completions (/v1/chat/completions)", openai),
    "anthropic": ("Anthropic messages (/v1/messages)", anthropic),
    "responses": ("OpenAI Responses API (/v1/responses)", responses),
    "gemini": ("Gemini generateContent (/v1beta/models/{model}:generateContent)", gemini),
    "bedrock": ("AWS Bedrock Converse (/model/{modelId}/converse)", bedrock),
    "ollama": ("Ollama chat (/api/chat)", ollama_chat),
}
TRY_EXAMPLE = '{"model": "mock-llm", "messages": [{"role": "user", "content": "what colour is the sky?"}]}'


class PrettyJSONField(forms.JSONField):
    """Options shown indented, one key per line, so they read as text rather than a blob."""

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2)


class CannedResponseForm(forms.ModelForm):
    options = PrettyJSONField(required=False, widget=forms.Textarea(attrs={"rows": 8, "cols": 90}),
                              help_text=CannedResponse._meta.get_field("options").help_text)

    class Meta:
        model = CannedResponse
        fields = ("prompt", "answer", "options", "scenario", "test_id", "reviewed")

    def clean_options(self) -> Any:
        return self.cleaned_data.get("options") or {}


class TryRequestForm(forms.Form):
    api = forms.ChoiceField(choices=[(k, v[0]) for k, v in TRY_PROVIDERS.items()], initial="openai")
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 14, "cols": 100}), initial=TRY_EXAMPLE,
                           help_text="A request body exactly as your client would send it.")


RECORDED = Q(options__has_key="recorded")


class RecordingFilter(admin.SimpleListFilter):
    """Recordings (record and replay) not yet reviewed, reviewed, or hand-written entries."""

    title = "recording"
    parameter_name = "recording"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("unreviewed", "recorded, not reviewed"), ("reviewed", "recorded, reviewed"),
                ("no", "hand-written")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "unreviewed":
            return queryset.filter(RECORDED, reviewed=False)
        if self.value() == "reviewed":
            return queryset.filter(RECORDED, reviewed=True)
        if self.value() == "no":
            return queryset.exclude(RECORDED)
        return queryset


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin):
    form = CannedResponseForm
    list_display = ("short_prompt", "match_rule", "short_answer", "scenario", "source", "recording",
                    "differs_from_file", "updated_at")
    list_filter = (RecordingFilter, "source", "scenario", "source_file", "updated_at",
                   ("test_id", admin.EmptyFieldListFilter))
    search_fields = ("prompt", "answer")
    readonly_fields = ("source", "source_file", "file_answer", "position", "created_at", "updated_at",
                       "recorded_exchange")
    fieldsets = (
        (None, {"fields": ("prompt", "answer", "options")}),
        ("Which requests see it", {"fields": ("scenario", "test_id")}),
        ("Where it came from", {"fields": ("source", "source_file", "file_answer", "position", "created_at",
                                           "updated_at")}),
        ("Recording", {"fields": ("reviewed", "recorded_exchange"),
                       "description": "What the upstream API answered when this entry was recorded (read-only); "
                                      "the entry above is what replays."}),
    )
    list_per_page = 50
    actions = ["approve_recordings"]

    @admin.action(description="Approve the selected recordings (mark them reviewed)")
    def approve_recordings(self, request: HttpRequest, queryset: QuerySet) -> None:
        approved = queryset.filter(RECORDED, reviewed=False).update(reviewed=True)
        self.message_user(request, f"{approved} recording{'s' if approved != 1 else ''} approved.", messages.SUCCESS)

    @admin.display(description="recording")
    def recording(self, obj: CannedResponse) -> str:
        if not obj.recorded:
            return ""
        return "recorded" if obj.reviewed else "recorded, not reviewed"

    @admin.display(description="recorded exchange")
    def recorded_exchange(self, obj: CannedResponse) -> str:
        exchange = RecordedExchange.objects.filter(entry_id=obj.pk).first() if obj.pk else None
        if exchange is None:
            return "(none)" if not obj.recorded else "(kept with the first text of its batch)"
        head = (f"{exchange.method} {exchange.upstream}{exchange.path}  ->  {exchange.status}"
                f"{' (streamed)' if exchange.streamed else ''}\n"
                f"time to first event: {exchange.ttft_ms} ms; total {exchange.duration_ms} ms; "
                f"{len(exchange.gaps_ms)} gaps between events, longest "
                f"{max(exchange.gaps_ms, default=0)} ms; recorded {exchange.recorded_at:%Y-%m-%d %H:%M:%S %Z}")
        parts = [head, "request headers: " + json.dumps(exchange.request_headers, ensure_ascii=False),
                 "request body:\n" + exchange.request_body[:20_000],
                 "response headers: " + json.dumps(exchange.response_headers, ensure_ascii=False),
                 "response body:\n" + exchange.response_body[:50_000]]
        return format_html('<pre class="recorded-exchange" style="white-space: pre-wrap; max-height: 40em; '
                           'overflow: auto">{}</pre>', "\n\n".join(parts))

    @admin.display(description="match")
    def match_rule(self, obj: CannedResponse) -> str:
        options = obj.options or {}
        rule = options.get("match", "exact")
        extras = [f"{k}={options[k]}" for k in ("on", "model", "provider", "tool", "priority") if k in options]
        if "turns" in options:
            extras.append(f"{len(options['turns'])} turns")
        return ", ".join([rule, *extras])

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        if isinstance(initial.get("options"), str):  # prefilled from a journal entry, as JSON text
            try:
                initial["options"] = json.loads(initial["options"])
            except ValueError:
                initial.pop("options")
        return initial

    def get_urls(self) -> list:
        return [path("try/", self.admin_site.admin_view(self.try_request), name="responses_app_try_request"),
                *super().get_urls()]

    def try_request(self, request: HttpRequest) -> HttpResponse:
        """Paste a request body and see which entry answers it, why others did not, and the answer. It shows
        entries and their answers, so it needs what reading them needs: the permission to view canned
        responses (staff without a group see none, and may not try either)."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        form = TryRequestForm(request.POST or None)
        result: dict[str, Any] = {}
        if request.method == "POST" and form.is_valid():
            provider = TRY_PROVIDERS[form.cleaned_data["api"]][1]
            try:
                data = orjson.loads(form.cleaned_data["body"])
                if not isinstance(data, dict):
                    raise ValueError("the body must be a JSON object")
                parsed = provider.parse(data)
                match = canned_index.current().find(parsed)
                body = orjson.loads(provider.render_json(parsed, match, provider.new_ids()))
                result = {
                    "entry": match.entry and CannedResponse.objects.filter(pk=match.entry.id).first(),
                    "rule": match.rule, "near_misses": match.near_misses, "prompt": parsed.prompt,
                    "turn": parsed.turn, "body": json.dumps(body, indent=2, ensure_ascii=False),
                }
            except (ValueError, APIError) as exc:
                result = {"error": getattr(exc, "message", str(exc))}
        context = {**self.admin_site.each_context(request), "title": "Which entry answers this request?",
                   "form": form, "result": result, "opts": self.model._meta}
        return TemplateResponse(request, "admin/responses_app/try_request.html", context)

    @admin.display(description="prompt", ordering="prompt")
    def short_prompt(self, obj: CannedResponse) -> str:
        return str(obj)

    @admin.display(description="answer")
    def short_answer(self, obj: CannedResponse) -> str:
        return obj.answer if len(obj.answer) <= 80 else obj.answer[:77] + "..."

    @admin.display(description="differs from file", boolean=True)
    def differs_from_file(self, obj: CannedResponse) -> bool:
        return obj.conflicts_with_file

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        state = ResponseSet.get()
        if state.last_error:
            messages.error(
                request,
                f"The last save of the responses file was rejected ({state.last_error_at:%Y-%m-%d %H:%M:%S}); "
                f"the answers from before it are still served. {state.last_error}",
            )
        elif state.last_loaded_at:
            messages.info(
                request,
                f"{state.last_load_summary} at {state.last_loaded_at:%Y-%m-%d %H:%M:%S %Z}. "
                f"{CannedResponse.objects.count()} canned responses are served.",
            )
        return super().changelist_view(request, extra_context)

    def save_model(self, request: HttpRequest, obj: CannedResponse, form: Any, change: bool) -> None:
        if change and obj.source == Source.FILE and form.changed_data:
            # The admin's edit wins from now on: a load never overwrites an admin row.
            obj.source = Source.ADMIN
            obj.file_answer = form.initial.get("answer")
            messages.info(
                request,
                f"This entry came from {obj.source_file}. It is now managed here, and reloading that file "
                "will not change it. Run `python manage.py dumpresponses` to write it back to the file.",
            )
        super().save_model(request, obj, form, change)


@admin.register(ResponseSet)
class ResponseSetAdmin(admin.ModelAdmin):
    """The default answer, and the state of the last load of the responses file."""

    fields = (
        "unknown_response", "unknown_response_source", "file_unknown_response", "settings", "version",
        "last_loaded_at", "last_loaded_file", "last_load_summary", "entries", "last_error", "last_error_at",
    )
    readonly_fields = fields[1:]
    list_display = ("__str__", "last_loaded_at", "last_loaded_file", "entries", "has_error")

    @admin.display(description="entries served")
    def entries(self, obj: ResponseSet) -> int:
        return CannedResponse.objects.count()

    @admin.display(description="last load failed", boolean=True)
    def has_error(self, obj: ResponseSet) -> bool:
        return bool(obj.last_error)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not ResponseSet.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ResponseSet, form: Any, change: bool) -> None:
        if "unknown_response" in form.changed_data:
            obj.unknown_response_source = Source.ADMIN
        with transaction.atomic():
            if change:
                obj.save(update_fields=["unknown_response", "unknown_response_source"])
            else:
                obj.save()
            SetVersion.bump(())


@admin.register(JournalEntry)
class JournalEntryAdmin(admin.ModelAdmin):
    """Every request to /v1/, newest first; read-only. Turn an unmatched one into a canned response."""

    date_hierarchy = "created_at"
    list_display = ("created_at", "method", "path", "model", "status", "matched", "short_prompt", "test_id",
                    "api_key_name", "duration_ms")
    list_filter = ("created_at", "status", "matched", "provider", "endpoint", "model", "stream",
                   ("test_id", admin.AllValuesFieldListFilter), "api_key_name", "scenario")
    search_fields = ("prompt", "request_id", "test_id", "model")
    actions = ["create_canned_response"]
    list_per_page = 100
    show_full_result_count = False  # counting a large journal on every page view is slow

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in JournalEntry._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="prompt")
    def short_prompt(self, obj: JournalEntry) -> str:
        return obj.prompt if len(obj.prompt) <= 60 else obj.prompt[:57] + "..."

    @admin.action(description="Create a canned response from this request", permissions=["add_canned"])
    def create_canned_response(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        entries = list(queryset[:2])
        if len(entries) != 1:
            self.message_user(request, "Choose exactly one journal entry to turn into a canned response.",
                              messages.WARNING)
            return None
        entry = entries[0]
        options: dict[str, Any] = {}
        if entry.model:
            options["model"] = entry.model
        initial = {"prompt": entry.prompt, "options": json.dumps(options), "scenario": entry.scenario}
        url = reverse("admin:responses_app_cannedresponse_add") + "?" + urlencode(initial)
        return HttpResponseRedirect(url)

    def has_add_canned_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("responses_app.add_cannedresponse")


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("name", "scenario", "is_active")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys for /v1/ (required only with MOCKLLM_REQUIRE_API_KEY). The key is shown once, when created."""

    form = ApiKeyForm
    list_display = ("name", "key_prefix", "scenario", "is_active", "created_at")
    list_filter = ("is_active", "scenario")
    search_fields = ("name",)
    readonly_fields = ("key_prefix", "created_at")

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        key = None
        if not change:
            key = ApiKey.generate()
            obj.set_key(key)
        super().save_model(request, obj, form, change)
        if key is not None:
            messages.warning(request, f"The key for {obj.name!r} is {key} . Copy it now: it is not stored, "
                                      "and cannot be shown again.")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        with transaction.atomic():  # a bulk delete skips ApiKey.delete(): record the change once here
            queryset.delete()
            SetVersion.bump(())
