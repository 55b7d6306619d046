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
