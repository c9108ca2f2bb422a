"""Settings for mockllm, read from the environment in this one file.

Every setting a user may change is an environment variable of the same name; the README lists
them. A malformed value stops start-up with ImproperlyConfigured rather than being guessed at.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool | None) -> bool | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def control_token(raw: str) -> str:
    """MOCKLLM_CONTROL_TOKEN, refused when it is guessable, as a weak SECRET_KEY is: 16 or more printable
    ASCII characters without white space (what a header carries unchanged), at least 6 different ones.
    Surrounding white space (a stray newline from a file) is dropped; a token of white space only is
    refused rather than taken as "off"."""
    token = raw.strip()
    if not raw:
        return ""
    advice = ('make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"')
    if len(token) < 16:
        raise ImproperlyConfigured(f"MOCKLLM_CONTROL_TOKEN is too short ({len(token)} characters without the "
                                   f"surrounding white space): use 16 or more random characters; {advice}")
    if not all("!" <= char <= "~" for char in token):
        raise ImproperlyConfigured("MOCKLLM_CONTROL_TOKEN may hold only printable ASCII characters without white "
                                   f"space (what an HTTP header carries unchanged); {advice}")
    if len(set(token)) < 6:
        raise ImproperlyConfigured(f"MOCKLLM_CONTROL_TOKEN is too easy to guess ({len(set(token))} different "
                                   f"characters): use random characters; {advice}")
    return token


def _postgres_connections(options: dict) -> dict:
    """Connection reuse on PostgreSQL: psycopg's pool, MOCKLLM_DB_POOL connections at most per process
    (default 8). Persistent connections (CONN_MAX_AGE) do not work under ASGI: each request runs in a
    thread of its own, so every request opened a connection that outlived it, until PostgreSQL refused
    more (measured: tests/benchmarks/shared.py). MOCKLLM_DB_POOL=0 opens one connection per request."""
    pool_size = env_int("MOCKLLM_DB_POOL", 8, minimum=0)
    if pool_size:
        return {"CONN_MAX_AGE": 0, "OPTIONS": {**options, "pool": {"min_size": 1, "max_size": pool_size,
                                                                     "timeout": 10}}}
    return {"CONN_MAX_AGE": 0, "OPTIONS": options}


def database_from_url(url: str) -> dict:
    """Turn DATABASE_URL (sqlite:///path or postgres://user:pass@host:port/name) into a DATABASES entry."""
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    if parts.scheme == "sqlite":
        # sqlite:///db.sqlite3 is relative to the project root; sqlite:////abs/path is absolute.
        raw_path = unquote(parts.path)[1:] if parts.path.startswith("/") else unquote(parts.path)
        if not raw_path:
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no SQLite file")
        name = raw_path if raw_path == ":memory:" else str(BASE_DIR / raw_path)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name,
            "OPTIONS": {
                # WAL lets readers carry on while a load writes; IMMEDIATE takes the write lock when a
                # transaction starts, so two writers queue on the busy timeout instead of failing with
                # "database is locked" when a deferred transaction tries to upgrade.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": env_int("MOCKLLM_SQLITE_TIMEOUT", 30, minimum=1),
            },
        }
    if parts.scheme in ("postgres", "postgresql", "pgsql"):
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no database")
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            **_postgres_connections(options),
        }
    raise ImproperlyConfigured(
        f"DATABASE_URL={url!r}: unsupported scheme {parts.scheme!r} (use sqlite:///FILE or postgres://...)"
    )


# MOCKLLM_PRODUCTION=1 is the shared-deployment mode: DEBUG off, a real SECRET_KEY, secure cookies,
# HTTPS for the admin (behind a TLS-terminating proxy). It refuses to start otherwise.
PRODUCTION = env_bool("MOCKLLM_PRODUCTION", False)
DEBUG = env_bool("DEBUG", not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when MOCKLLM_PRODUCTION is on")

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (and always with MOCKLLM_PRODUCTION)")
    SECRET_KEY = "mockllm-insecure-development-key-set-SECRET_KEY-in-production"
elif PRODUCTION and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5):
    raise ImproperlyConfigured("SECRET_KEY is too weak for MOCKLLM_PRODUCTION: use 50 or more random characters")

# Admin sessions, CSRF and clickjacking protection. The API under /v1/ has no cookies or sessions.
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("MOCKLLM_SECURE_COOKIES", PRODUCTION)
SECURE_SSL_REDIRECT = env_bool("MOCKLLM_SSL_REDIRECT", PRODUCTION)
SECURE_HSTS_SECONDS = env_int("MOCKLLM_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
if env_bool("MOCKLLM_BEHIND_TLS_PROXY", PRODUCTION):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "daphne",  # first, so that `manage.py runserver` serves ASGI
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "responses_app",
]

# The full stack, for the admin and everything outside /v1/.
MIDDLEWARE = [
    "responses_app.api.middleware.AccessLogMiddleware",
    "responses_app.api.middleware.ProviderErrorMiddleware",  # does nothing outside /v1/ (test clients reach /v1/ here)
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# /v1/ is served by its own handler with only async-native middleware: every sync-only middleware
# costs a thread hop per request under ASGI, and the API needs no sessions, CSRF or messages.
MOCKLLM_API_MIDDLEWARE = [
    "responses_app.api.middleware.AccessLogMiddleware",
    "responses_app.api.middleware.ProviderErrorMiddleware",
]

ROOT_URLCONF = "mockllm_site.urls"
ASGI_APPLICATION = "mockllm_site.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(env_str("DATABASE_URL", "sqlite:///db.sqlite3"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Bodies over this size get a 413 in the provider's error shape.
MOCKLLM_MAX_BODY_BYTES = env_int("MOCKLLM_MAX_BODY_BYTES", 10 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MOCKLLM_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_PARSER_CLASSES": [],  # views read the body themselves (api/body.py)
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "responses_app.api.body.IgnoreAcceptNegotiation",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_THROTTLE_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "responses_app.api.errors.provider_exception_handler",
}

# One file, or several separated by ":" (os.pathsep, as in PATH); the first is the main one.
MOCKLLM_RESPONSES_FILES = [
    Path(item).expanduser().resolve()
    for item in env_str("MOCKLLM_RESPONSES_FILE", str(BASE_DIR / "responses.yml")).split(os.pathsep)
    if item.strip()
]
if not MOCKLLM_RESPONSES_FILES:
    raise ImproperlyConfigured("MOCKLLM_RESPONSES_FILE names no file")
MOCKLLM_RESPONSES_FILE = MOCKLLM_RESPONSES_FILES[0]
# Watch the responses files and load every save. Unset: on under `manage.py runserver`, off in other
# server processes (run `manage.py watchresponses` beside them). 1/0 forces it on or off.
MOCKLLM_HOT_RELOAD = env_bool("MOCKLLM_HOT_RELOAD", None)  # type: ignore[arg-type]
MOCKLLM_RELOAD_DEBOUNCE_SECONDS = env_float("MOCKLLM_RELOAD_DEBOUNCE_SECONDS", 0.3, minimum=0.0)
MOCKLLM_LOG_LEVEL = env_str("MOCKLLM_LOG_LEVEL", "INFO").upper()
if MOCKLLM_LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"MOCKLLM_LOG_LEVEL={MOCKLLM_LOG_LEVEL!r} is not a logging level")
# The models GET /v1/models lists (every shape) and /v1/models/{id} knows.
MOCKLLM_MODELS = env_list(
    "MOCKLLM_MODELS",
    ["mock-llm", "gpt-4o", "gpt-4o-mini", "text-embedding-3-small", "claude-haiku-4-5", "claude-sonnet-4-5",
     "gemini-2.5-flash", "gemini-embedding-001"],
)
# Length of derived embedding vectors when a request gives no `dimensions`.
MOCKLLM_EMBEDDING_DIMENSIONS = env_int("MOCKLLM_EMBEDDING_DIMENSIONS", 1536, minimum=1)
# Azure OpenAI answers carry Azure's content-filter annotations (prompt_filter_results, content_filter_results,
# and a first stream chunk with no choices), as the real service sends them; off: the plain OpenAI bodies.
MOCKLLM_AZURE_CONTENT_FILTER_RESULTS = env_bool("MOCKLLM_AZURE_CONTENT_FILTER_RESULTS", True)
# The longest a `stall` or `timeout` fault keeps a connection waiting.
MOCKLLM_STALL_SECONDS = env_float("MOCKLLM_STALL_SECONDS", 300.0, minimum=0.0)
# How often each server process checks whether the canned set changed in another process.
MOCKLLM_INDEX_POLL_SECONDS = env_float("MOCKLLM_INDEX_POLL_SECONDS", 0.25, minimum=0.01)

# Record and replay (docs/record-and-replay.md): off; miss (a request no entry answers goes upstream once
# and is recorded); all (every request goes upstream and is recorded again).
MOCKLLM_RECORD = env_str("MOCKLLM_RECORD", "off").strip().lower()
if MOCKLLM_RECORD not in ("off", "miss", "all"):
    raise ImproperlyConfigured(f"MOCKLLM_RECORD={MOCKLLM_RECORD!r} must be off, miss or all")
MOCKLLM_UPSTREAM_OPENAI = env_str("MOCKLLM_UPSTREAM_OPENAI", "https://api.openai.com").rstrip("/")
MOCKLLM_UPSTREAM_ANTHROPIC = env_str("MOCKLLM_UPSTREAM_ANTHROPIC", "https://api.anthropic.com").rstrip("/")
for _name, _url in (("MOCKLLM_UPSTREAM_OPENAI", MOCKLLM_UPSTREAM_OPENAI),
                    ("MOCKLLM_UPSTREAM_ANTHROPIC", MOCKLLM_UPSTREAM_ANTHROPIC)):
    if not _url.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"{_name}={_url!r} must be an http:// or https:// URL")
# Keys that replace the client's own when a request is forwarded upstream (never stored or logged).
MOCKLLM_UPSTREAM_OPENAI_KEY = env_str("MOCKLLM_UPSTREAM_OPENAI_KEY", "")
MOCKLLM_UPSTREAM_ANTHROPIC_KEY = env_str("MOCKLLM_UPSTREAM_ANTHROPIC_KEY", "")
# The longest a forwarded request waits for the upstream's next bytes.
MOCKLLM_UPSTREAM_TIMEOUT_SECONDS = env_float("MOCKLLM_UPSTREAM_TIMEOUT_SECONDS", 600.0, minimum=1.0)

# Require an API key (created in the admin) on /v1/. Off: any key, or none, is accepted.
MOCKLLM_REQUIRE_API_KEY = env_bool("MOCKLLM_REQUIRE_API_KEY", False)

# The control API (/control/...) answers only requests bearing this token; unset, it is off.
MOCKLLM_CONTROL_TOKEN = control_token(env_str("MOCKLLM_CONTROL_TOKEN", ""))
# The request journal: every /v1/ request, written in batches by a writer process beside each server.
MOCKLLM_JOURNAL = env_bool("MOCKLLM_JOURNAL", True)
MOCKLLM_JOURNAL_MAX_ROWS = env_int("MOCKLLM_JOURNAL_MAX_ROWS", 100_000, minimum=0)  # 0: no limit
MOCKLLM_JOURNAL_MAX_DAYS = env_float("MOCKLLM_JOURNAL_MAX_DAYS", 7.0, minimum=0.0)  # 0: no limit
MOCKLLM_JOURNAL_FLUSH_SECONDS = env_float("MOCKLLM_JOURNAL_FLUSH_SECONDS", 0.1, minimum=0.01)
MOCKLLM_JOURNAL_BUFFER = env_int("MOCKLLM_JOURNAL_BUFFER", 50_000, minimum=100)
MOCKLLM_JOURNAL_BODY_BYTES = env_int("MOCKLLM_JOURNAL_BODY_BYTES", 64 * 1024, minimum=0)
# Test runs' canned responses (added with a test id) untouched this long are deleted; 0 keeps them.
MOCKLLM_TEST_RUN_MAX_HOURS = env_float("MOCKLLM_TEST_RUN_MAX_HOURS", 24.0, minimum=0.0)
# Redis: server processes tell each other at once when the canned sets change (canned/change_bus.py),
# and share rate-limit budgets (api/rate_limits.py). Keys and channels start with the prefix.
MOCKLLM_REDIS_URL = env_str("MOCKLLM_REDIS_URL", "")
MOCKLLM_REDIS_PREFIX = env_str("MOCKLLM_REDIS_PREFIX", "mockllm")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "responses_app.team.redaction.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "filters": {"redact": {"()": "responses_app.team.redaction.RedactSecrets"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "mockllm": {"handlers": ["console"], "level": MOCKLLM_LOG_LEVEL, "propagate": False},
        "django": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        # 4xx are in the access log already; keep Django's own lines for errors (with tracebacks).
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        # Daphne and runserver print their own plain access lines; ours are the JSON ones.
        "django.channels.server": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}
FIXTURE_DIRS = [BASE_DIR / "fixtures"]
