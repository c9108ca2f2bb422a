"""Smaller gaps of a shared deployment: a guessable control token, a key sent as the model name, a run's
refused requests, and who may use the admin's "Try a request"."""
from __future__ import annotations

import pytest

from .conftest import CONTROL_TOKEN, ROOT, manage


@pytest.mark.parametrize("token", ["a" * 16, " " * 20, "  aaaaaaaaaaaaaaaaaaaa  ", "abababababababab", "abc123",
                                   "0123456789abcdef with spaces", "caf\u00e9-0123456789abcdef"])
def test_a_weak_control_token_is_refused_at_start_up(token):
    import os

    env = {**os.environ, "MOCKLLM_CONTROL_TOKEN": token}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = manage(env, "check", check=False)
    assert result.returncode != 0
    assert "MOCKLLM_CONTROL_TOKEN" in result.stderr and "secrets.token_urlsafe" in result.stderr


def test_a_good_control_token_starts():
    import os

    for token in (CONTROL_TOKEN, "  " + CONTROL_TOKEN + "\n"):
        env = {**os.environ, "MOCKLLM_CONTROL_TOKEN": token}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        assert manage(env, "check", check=False).returncode == 0


def test_the_readme_says_how_to_make_a_control_token():
    assert "secrets.token_urlsafe(32)" in (ROOT / "README.md").read_text()
