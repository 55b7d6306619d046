"""Generate the README's results tables from the benchmark JSON (never typed by hand).

Reads ``benchmarks/results/compare/*/comparison.json`` (written by ``benchmarks/scenarios.sh``) and
``benchmarks/results/meta_sweep.json``, and rewrites the part of README.md between
``<!-- results:begin -->`` and ``<!-- results:end -->``. ``--check`` exits 1 if README.md is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _cell(summary: dict, key: str) -> str:
    v = summary.get(key)
    return "-" if v is None else f"{v['mean']:.3f} ± {v['sd']:.3f}"


def render(results: Path) -> str:
    parts = []
    for path in sorted((results / "compare").glob("*/comparison.json")):
        r = json.loads(path.read_text())
        seeds = ",".join(str(s) for s in r["seeds"])
        opts = ", ".join(f"{k}={v}" for k, v in (r.get("scenario_options") or {}).items())
        parts.append(f"**{r['scenario']}**{' (' + opts + ')' if opts else ''}, seeds {seeds}\n")
        groups = sorted({k[len('mean_weight_'):] for s in r["summary"].values() for k in s if k.startswith("mean_weight_")})
        head = ["method", "test accuracy", "balanced accuracy", "selection AUROC"] + [f"w̄ {g}" for g in groups]
        parts.append("| " + " | ".join(head) + " |")
        parts.append("|" + "---|" * len(head))
        for method, s in r["summary"].items():
            cells = [method, _cell(s, "test_accuracy"), _cell(s, "balanced_accuracy"), _cell(s, "selection_auroc")]
            cells += [_cell(s, f"mean_weight_{g}") for g in groups]
            parts.append("| " + " | ".join(cells) + " |")
        parts.append("")
    sweep = results / "meta_sweep.json"
    if sweep.is_file():
        r = json.loads(sweep.read_text())
        parts.append(f"**Meta-set size sweep** on {r['scenario']} (test accuracy), seeds {','.join(map(str, r['seeds']))}\n")
        parts.append("| meta per class | " + " | ".join(r["methods"]) + " |")
        parts.append("|---|" + "---|" * len(r["methods"]))
        for k in r["sizes"]:
            s = r["summary"][str(k)]
            parts.append(f"| {k} | " + " | ".join(_cell(s[m], "test_accuracy") for m in r["methods"]) + " |")
        parts.append("")
    if not parts:
        return "_No benchmark results yet: run `benchmarks/scenarios.sh`._\n"
    return "\n".join(parts)


def rewrite(readme: str, table: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README.md lacks the markers {BEGIN} / {END}")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}{END}{tail}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--check", action="store_true", help="exit 1 if the README is not up to date")
    args = ap.parse_args()
    old = args.readme.read_text()
    new = rewrite(old, render(args.results))
    if args.check:
        sys.exit(0 if new == old else 1)
    args.readme.write_text(new)
    print(f"updated {args.readme}")


if __name__ == "__main__":
    main()
