"""run_weekly as a shell runs it, in a subprocess on a SQLite file."""

import os
import subprocess
import sys

import pytest

from tests.subprocesses import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample_env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    env = {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "EMAIL_URL": f"filemail:///{folder / 'mail'}",
    }
    for args in (["migrate", "-v", "0"], ["loaddata", "blt_sample", "-v", "0"]):
        subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True
        )
    return env


def test_json_output_cut_short_by_the_reader_still_exits_0(sample_env):
    command = [
        sys.executable,
        "manage.py",
        "run_weekly",
        "--week",
        "2026-W48",
        "--dry-run",
        "--json",
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=sample_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    first_line = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read()
    process.wait(timeout=60)

    assert first_line.startswith('{"domain": "app1.example7.com"')
    assert process.returncode == 0, stderr
    assert "BrokenPipeError" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "Weekly reports for 2026-W48 (dry run): 34 would send, 6 skipped, "
        "0 already sent"
    )
