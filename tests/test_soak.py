"""A short soak run in every `make test`; `make soak` runs the same for ten minutes."""
import json
import subprocess
import sys

import pytest

from .support import ROOT

pytestmark = pytest.mark.slow  # a 12-second soak run


def test_a_short_soak_run_loses_nothing_and_stays_flat():
    result = subprocess.run([sys.executable, "tests/soak.py", "--seconds", "12", "--at-least", "3"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["ok"], figures
    assert figures["requests"] > 100 and figures["file_rewrites"] >= 3 and figures["admin_entries"] >= 3
    assert result.returncode == 0
