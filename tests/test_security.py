"""Security basics for a shared deployment: production refuses unsafe settings; the admin is protected."""
import os
import secrets
import subprocess
import sys

import pytest
from django.contrib.auth.models import User

from .support import ROOT

STRONG_KEY = secrets.token_urlsafe(60)


def check(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE")}
    return subprocess.run([sys.executable, "manage.py", "check", *args], cwd=ROOT, env={**full, **env},
                          capture_output=True, text=True)


def test_production_refuses_to_start_without_a_secret_key():
    result = check(MOCKLLM_PRODUCTION="1")
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_production_refuses_to_start_with_debug_on():
    result = check(MOCKLLM_PRODUCTION="1", DEBUG="1", SECRET_KEY=STRONG_KEY)
    assert result.returncode != 0 and "DEBUG must be off" in result.stderr


def test_production_refuses_a_weak_secret_key():
    result = check(MOCKLLM_PRODUCTION="1", SECRET_KEY="changeme")
    assert result.returncode != 0 and "too weak" in result.stderr


def test_check_deploy_is_clean_with_the_documented_production_settings():
    # The settings of the README's "Shared deployment".
    result = check("--deploy", "--fail-level", "WARNING", MOCKLLM_PRODUCTION="1", SECRET_KEY=STRONG_KEY,
                   ALLOWED_HOSTS="mock.example.com", CSRF_TRUSTED_ORIGINS="https://mock.example.com",
                   DATABASE_URL="postgres://mockllm@db.example.com:5432/mockllm",
                   MOCKLLM_REDIS_URL="redis://redis.example.com:6379/0",
                   MOCKLLM_CONTROL_TOKEN=secrets.token_urlsafe(32), MOCKLLM_REQUIRE_API_KEY="1")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


@pytest.mark.django_db
def test_the_admin_has_csrf_and_clickjacking_protection_and_http_only_sessions(client, settings):
    User.objects.create_superuser("admin", "a@example.com", "a-long-test-password")
    page = client.get("/admin/login/")
    assert page["X-Frame-Options"] == "DENY"
    csrf_client = client.__class__(enforce_csrf_checks=True)
    refused = csrf_client.post("/admin/login/", {"username": "admin", "password": "a-long-test-password"})
    assert refused.status_code == 403  # no CSRF token
    response = client.post("/admin/login/", {"username": "admin", "password": "a-long-test-password"})
    assert response.status_code == 302
    assert response.cookies["sessionid"]["httponly"]


def test_a_short_control_token_is_refused():
    result = check(MOCKLLM_CONTROL_TOKEN="secret")
    assert result.returncode != 0 and "MOCKLLM_CONTROL_TOKEN is too short" in result.stderr
