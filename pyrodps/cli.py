"""Command line: ``pyrodps run`` and ``pyrodps summarize``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pyrodps.errors import PyrodpsError


def _parser() -> argparse.ArgumentParser:
    from pyrodps.data import SCENARIOS
    from pyrodps.runner import METHODS

    p = argparse.ArgumentParser(prog="pyrodps", description="Bayesian data point selection (BADS)")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run one method on one scenario")
    r.add_argument("--scenario", required=True, help=f"one of: {', '.join(SCENARIOS)}")
    r.add_argument("--method", required=True, help=f"one of: {', '.join(METHODS)}")
    r.add_argument("--out", required=True, type=Path, help="output folder (must be empty unless --force)")
    r.add_argument("--steps", type=int, default=None, help="number of sampler / SGD steps")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--noise-rate", type=float, default=0.4, help="fraction of training labels flipped")
    r.add_argument("--meta-per-class", type=int, default=5, help="clean meta examples per class")
    r.add_argument("--force", action="store_true", help="overwrite a non-empty output folder")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    s = sub.add_parser("summarize", help="print the metrics of run folders side by side")
    s.add_argument("dirs", nargs="+", type=Path)
    return p


SUMMARY_ROWS = ("method", "scenario", "seed", "steps", "wall_seconds", "test_accuracy", "selection_auroc",
                "selection_average_precision", "mean_weight_clean", "mean_weight_corrupted")


def summarize(dirs: list[Path]) -> str:
    """A table with one column per run folder."""
    runs = []
    for d in dirs:
        path = Path(d) / "metrics.json"
        if not path.is_file():
            raise PyrodpsError(f"dirs: {path} does not exist")
        runs.append(json.loads(path.read_text()))
    fmt = lambda v: "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))  # noqa: E731
    width = max(12, *(len(fmt(r.get(k))) for r in runs for k in SUMMARY_ROWS))
    lines = []
    for k in SUMMARY_ROWS:
        lines.append(f"{k:<28}" + "".join(f"{fmt(r.get(k)):>{width + 2}}" for r in runs))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            from pyrodps.runner import RunRequest, run

            req = RunRequest(args.scenario, args.method, args.out, args.steps, args.seed, args.noise_rate,
                             args.meta_per_class, args.force)
            metrics = run(req, progress=not args.no_progress)
            print(json.dumps({k: metrics[k] for k in SUMMARY_ROWS if k in metrics}, indent=2))
        elif args.command == "summarize":
            print(summarize(args.dirs))
    except PyrodpsError as e:
        print(f"pyrodps: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
