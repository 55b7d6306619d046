"""The README's results tables are generated from the committed benchmark JSON, never typed by hand."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_results_match_benchmark_json():
    rc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "readme_table.py"), "--check"], cwd=ROOT, check=False).returncode
    assert rc == 0, "README.md results are stale: run python benchmarks/readme_table.py"


def test_readme_shows_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "make run" in text and "make test" in text


def test_every_test_the_run_folder_guarantees_name_exists():
    """The README's table of run-folder guarantees names the tests that prove them: each must exist."""
    import re

    text = (ROOT / "README.md").read_text()
    section = text[text.index("**What a run folder guarantees**"):text.index("From Python, `fit_bads(..., checkpoint_dir=DIR)`")]
    named = set(re.findall(r"`(test_\w+)`", section))
    sources = "".join((ROOT / "tests" / f).read_text() for f in ("test_run_folder_safety.py", "test_kill_resume.py"))
    defined = set(re.findall(r"^def (test_\w+)", sources, re.MULTILINE))
    assert len(named) >= 12 and named <= defined, named - defined
