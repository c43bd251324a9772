"""Run the failure-report programs kept beside the repository, when present.

Each program reproduces a fault seen in the wild and exits 0 only when
msgflux behaves right. The folder is outside this repository, so the tests
skip when it is missing.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(
    os.environ.get("MSGFLUX_CASES_DIR", Path(__file__).resolve().parents[2] / "shared" / "cases")
)
PROGRAMS = sorted(CASES.glob("*.py")) if CASES.is_dir() else []


@pytest.mark.skipif(not PROGRAMS, reason=f"no failure-report programs in {CASES}")
@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.stem)
def test_failure_report_program_passes(program):
    result = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
