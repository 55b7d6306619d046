"""Command line: ``pyrodps run``, ``pyrodps compare``, ``pyrodps summarize`` and ``pyrodps report``."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from pyrodps.errors import PyrodpsError, ValidationError

# scenario options the command line knows: flag -> (option name, type)
SCENARIO_FLAGS = {
    "--noise-rate": ("noise_rate", float),
    "--noise-kind": ("noise_kind", str),
    "--feature-noise-kind": ("feature_noise_kind", str),
    "--imbalance-ratio": ("imbalance_ratio", float),
    "--positive-ratio": ("positive_ratio", float),
    "--meta-per-class": ("meta_per_class", int),
    "--num-samples": ("num_samples", int),
    "--outlier-rate": ("outlier_rate", float),
    "--outlier-scale": ("outlier_scale", float),
    "--meta-size": ("meta_size", int),
    "--num-sources": ("num_sources", int),
}


def _add_problem_args(p: argparse.ArgumentParser) -> None:
    from pyrodps.data import SCENARIOS

    p.add_argument("--scenario", help=f"one of: {', '.join(SCENARIOS)}")
    for flag, (_, typ) in SCENARIO_FLAGS.items():
        p.add_argument(flag, type=typ, default=None, help="scenario option (see the scenario's docstring)")
    p.add_argument("--train", type=Path, help=".npz with X, y (and optional corrupted)")
    p.add_argument("--meta", type=Path, help=".npz with X, y: the clean meta set")
    p.add_argument("--test", type=Path, help=".npz with X, y")
    p.add_argument("--standardise", default="auto", choices=("auto", "on", "off"),
                   help="z-score vector inputs per feature with the train+meta moments (auto: on for --train/--meta/"
                        "--test files, off for the named scenarios, which are scaled already)")


# pieces a user may name: a registry name, module:Class or path/file.py:Class, with JSON or key=value options
PIECE_FLAGS = {
    "likelihood": "the likelihood (categorical, gaussian, ...; default from the targets); also used by the baselines",
    "weight-prior": "BADS: the weight prior p(w) (uniform, beta, truncated-gaussian, ...)",
    "theta-prior": "BADS: the network prior p_0(θ) (calibrated, fan-in, isotropic, ...)",
    "sampler": "BADS: the θ-block sampler (sgld, psgld, ...)",
}
NUMBER_FLAGS = {
    "temperature": "BADS: the temperature T of the sampled posterior (default 0.1)",
    "step-size": "BADS: the θ step size η (default by input kind)",
    "rho-theta": "BADS: ρ_θ, the weight of the training likelihood (default by input kind)",
    "rho-meta": "BADS: ρ_m, the weight of the meta likelihood (default 0.01 ρ_θ N / M)",
    "companion-step-size": "BADS, log Z companion: the step size of θ' (default: θ's)",
    "companion-temperature": "BADS, log Z companion: the temperature of θ' (default: the temperature)",
}
INT_FLAGS = {
    "companion-window": "BADS, log Z companion: average each point's l_i(θ') over its last visits (default 1)",
    "weight-net-hidden": "BADS weight network: hidden width (0: the linear map of grouped weights; default 16)",
}


def _hidden(text: str) -> tuple[int, ...]:
    """``--hidden 256,256`` -> (256, 256); ``none`` -> () (a linear model)."""
    if text.strip().lower() in ("none", "linear", ""):
        return ()
    try:
        return tuple(int(h) for h in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated layer widths or 'none', got {text!r}") from None


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weight-net-features", type=lambda t: tuple(f.strip() for f in t.split(",") if f.strip()),
                   default=None, metavar="F1,F2,...",
                   help="BADS weight network (--method bads-weightnet / bads-grouped): its inputs, any of input, "
                        "label, group, embedding, loss")
    p.add_argument("--hidden", type=_hidden, default=None, metavar="W1,W2,...|none",
                   help="hidden layer widths of the MLP for vector inputs, for every method (default: 16 for "
                        "classes on a small table, < 1,000 training points and <= 32 features; else 256,256; "
                        "none: linear)")
    for name, text in PIECE_FLAGS.items():
        p.add_argument(f"--{name}", default=None, metavar="NAME|module:Class", help=text)
        p.add_argument(f"--{name}-kwargs", default=None, metavar="JSON|key=value,...",
                       help=f"options of --{name}: a JSON object or key=value pairs")
    for name, text in NUMBER_FLAGS.items():
        p.add_argument(f"--{name}", type=float, default=None, help=text)
    for name, text in INT_FLAGS.items():
        p.add_argument(f"--{name}", type=int, default=None, help=text)


def _config_fields(args: argparse.Namespace) -> dict:
    """The BADSConfig fields the user set on the command line (kwargs as given: the config parses them)."""
    out: dict = {} if args.hidden is None else {"hidden": args.hidden}
    if args.weight_net_features is not None:
        out["weight_net_features"] = args.weight_net_features
    for name in (*PIECE_FLAGS, *NUMBER_FLAGS, *INT_FLAGS):
        key = name.replace("-", "_")
        if getattr(args, key) is not None:
            out[key] = getattr(args, key)
        if name in PIECE_FLAGS and getattr(args, f"{key}_kwargs") is not None:
            if getattr(args, key) is None:
                raise ValidationError(f"{key}_kwargs", f"--{name}-kwargs needs --{name}")
            from pyrodps.plugins import parse_kwargs

            out[f"{key}_kwargs"] = parse_kwargs(getattr(args, f"{key}_kwargs"), f"{key}_kwargs")
    return out


def _parser() -> argparse.ArgumentParser:
    from pyrodps.app.methods import METHODS

    p = argparse.ArgumentParser(prog="pyrodps", description="Bayesian data point selection (BADS)", allow_abbrev=False)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run one method on one scenario or on your own .npz files", allow_abbrev=False)
    _add_problem_args(r)
    _add_config_args(r)
    r.add_argument("--method", help=f"one of: {', '.join(METHODS)} (required unless --resume)")
    r.add_argument("--out", type=Path, help="output folder (must be empty unless --force; required unless --resume)")
    r.add_argument("--resume", type=Path, metavar="DIR",
                   help="continue the interrupted run in DIR from its last checkpoint (no other options needed)")
    r.add_argument("--checkpoint-every", type=int, default=500, help="BADS: steps between checkpoints (default 500)")
    r.add_argument("--memory-budget-mib", type=float, default=None,
                   help="BADS: MiB of kept draws held in memory; past it they are spilled to OUT/draws")
    r.add_argument("--on-divergence", default="raise", choices=("raise", "backoff"),
                   help="BADS: on a non-finite value, stop (raise) or halve the step size and go on (backoff)")
    r.add_argument("--steps", type=int, default=None, help="number of sampler / SGD steps")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--force", action="store_true", help="overwrite a non-empty output folder")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    r.add_argument("--chains", type=int, default=1, help="BADS: number of chains, run one after another")
    r.add_argument("--track-weights", type=_track_weights, default=None, metavar="N|all",
                   help="BADS: weights kept per draw in posterior.nc (default 200 points; 'all': every point)")
    c = sub.add_parser("compare", help="several methods over several seeds on one scenario or your .npz files",
                       allow_abbrev=False)
    _add_problem_args(c)
    _add_config_args(c)
    c.add_argument("--methods", required=True, help="comma-separated, e.g. bads,bads-companion,mixing")
    c.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    c.add_argument("--out", required=True, type=Path)
    c.add_argument("--steps", type=int, default=None)
    c.add_argument("--force", action="store_true")
    c.add_argument("--add", action="store_true",
                   help="add --methods to the comparison already in --out (same problem, seeds and options), "
                        "or finish an interrupted one: the (method, seed) runs it holds are kept, not rerun")
    c.add_argument("--no-references", action="store_true",
                   help="do not add the reference rows (mixing; oracle with corrupted points, and the harm; "
                        "class-balanced with minority points)")
    c.add_argument("--no-progress", action="store_true")
    s = sub.add_parser("summarize", help="print the metrics of run folders side by side", allow_abbrev=False)
    s.add_argument("dirs", nargs="+", type=Path)
    rep = sub.add_parser("report", help="write DIR/report.html: configuration, metrics, convergence, figures",
                         allow_abbrev=False)
    rep.add_argument("dir", type=Path, help="a folder written by pyrodps run")
    rep.add_argument("--compare", type=Path, default=None, help="a folder written by pyrodps compare")
    rep.add_argument("--suspects", type=int, default=20,
                     help="how many of the least-trusted training points the page lists (all go to suspects.csv)")
    rep.add_argument("--max-rhat", type=float, default=1.01,
                     help="within each chain (its two halves), a quantity passes with split R-hat below this")
    rep.add_argument("--min-ess-per-chain", type=float, default=100.0,
                     help="within each chain, a quantity passes with bulk ESS >= this")
    rep.add_argument("--min-weight-pass-fraction", type=float, default=0.9,
                     help="the tracked weights pass (within each chain, and across chains) when this fraction "
                          "of them pass")
    rep.add_argument("--max-rhat-across", type=float, default=1.05,
                     help="across chains, a tracked weight passes with pooled R-hat below this")
    rep.add_argument("--min-weight-rank-correlation", type=float, default=0.95,
                     help="every pair of chains needs this Spearman correlation of its posterior-mean weights")
    rep.add_argument("--max-auroc-spread", type=float, default=0.005,
                     help="max - min of the per-chain selection AUROC may be at most this")
    rep.add_argument("--max-accuracy-spread", type=float, default=0.01,
                     help="max - min of the per-chain posterior-predictive test accuracy may be at most this")
    return p


def _track_weights(text: str) -> int | str:
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer or 'all', got {text!r}") from None


SUMMARY_ROWS = ("method", "scenario", "seed", "steps", "wall_seconds", "test_accuracy", "balanced_accuracy",
                "test_rmse", "test_mae", "selection_auroc", "selection_average_precision", "mean_weight_clean", "mean_weight_corrupted",
                "mean_weight_majority", "mean_weight_minority")


def summarize(dirs: list[Path]) -> str:
    """A table with one column per run folder."""
    from pyrodps.io import read_json

    runs = [read_json(Path(d) / "metrics.json", "dirs") for d in dirs]
    rows = [k for k in SUMMARY_ROWS if any(k in r for r in runs)]
    fmt = lambda v: "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))
    width = max(12, *(len(fmt(r.get(k))) for r in runs for k in rows))
    return "\n".join(f"{k:<28}" + "".join(f"{fmt(r.get(k)):>{width + 2}}" for r in runs) for k in rows)


def _problem_spec(args: argparse.Namespace):
    from pyrodps.app.runner import ProblemSpec

    options = {name: getattr(args, flag[2:].replace("-", "_")) for flag, (name, _) in SCENARIO_FLAGS.items()}
    options = {k: v for k, v in options.items() if v is not None}
    return ProblemSpec(args.scenario, options, getattr(args, "train", None), getattr(args, "meta", None),
                       getattr(args, "test", None), standardise=args.standardise)


RESUME_KEEPS = ("resume", "no_progress", "command")  # what --resume may be combined with


def _check_resume_alone(args: argparse.Namespace) -> None:
    """``--resume DIR`` continues the run exactly as it was started: any other setting is refused (it
    would be silently ignored otherwise), ``--steps`` with a message that says how to run longer."""
    defaults = vars(_parser().parse_args(["run"]))  # every option of `run` at its default
    given = [d for d, v in vars(args).items() if d not in RESUME_KEEPS and d in defaults and v != defaults[d]]
    if not given:
        return
    if "steps" in given:
        raise ValidationError(
            "steps", "--resume continues a run with the length it was started with (its burn-in, step-size "
            "schedule and averaging window depend on it), so it cannot be changed or extended. To sample longer, "
            f"start a new run with the same settings: {_rerun_command(args.resume, args.steps)}")
    flags = ", ".join("--" + d.replace("_", "-") for d in given)
    raise ValidationError("resume", f"--resume DIR continues the run with the settings in DIR/request.json and takes "
                          f"no other options (got {flags}); only --no-progress may be added")


def _rerun_command(folder: Path, steps: int) -> str:
    """The ``pyrodps run`` command line of the run in ``folder`` with ``--steps steps`` and a new folder."""
    import shlex

    from pyrodps.io import read_json

    try:
        req = read_json(folder / "request.json", "resume")
    except ValidationError:
        return f"pyrodps run <the settings of the first run> --steps {steps} --out NEW_DIR"
    words = ["pyrodps", "run"]
    problem = req.get("problem", {})
    if problem.get("scenario"):
        words += ["--scenario", problem["scenario"]]
        flag_of = {name: flag for flag, (name, _) in SCENARIO_FLAGS.items()}
        for name, value in problem.get("options", {}).items():
            words += [flag_of.get(name, "--" + name.replace("_", "-")), str(value)]
    else:
        words += [w for k in ("train", "meta", "test") for w in (f"--{k}", str(problem.get(k)))]
    words += ["--method", str(req.get("method")), "--seed", str(req.get("seed", 0))]
    for key in ("chains", "checkpoint_every", "on_divergence", "track_weights", "memory_budget_mib"):
        if req.get(key) not in (None, 1, 500, "raise"):
            words += ["--" + key.replace("_", "-"), str(req[key])]
    for key, value in req.get("config", {}).items():
        words += ["--" + key.replace("_", "-"), json.dumps(value) if isinstance(value, dict) else str(value)]
    return shlex.join([*words, "--steps", str(steps), "--out", f"{folder}-longer"])


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValidationError("seeds", f"must be comma-separated integers, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise ValidationError("seeds", f"must be non-negative integers, got {text!r}")
    return seeds


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """pyrodps's own warnings as one line on stderr; others as Python prints them."""
    if category.__module__.startswith("pyrodps"):
        print(f"pyrodps: warning: {message}", file=sys.stderr)
    else:
        _DEFAULT_SHOWWARNING(message, category, filename, lineno, file, line)


_DEFAULT_SHOWWARNING = warnings.showwarning


def _comparison_to_extend(out: Path, header: dict, seeds: list[int], references: bool) -> list[dict]:
    """The runs of ``out/comparison.json`` for ``compare --add``, after checking that they compare
    the same problems in the same way (else :class:`ValidationError` naming what differs)."""
    from pyrodps.io import read_json

    path = out / "comparison.json"
    if not path.exists():
        raise ValidationError("add", f"{path} does not exist: --add extends a comparison written by pyrodps compare")
    old = read_json(path, "add")
    wanted = {**json.loads(json.dumps(header)), "seeds": seeds, "references": references}
    for key, want in wanted.items():
        if (have := old.get(key)) != want:
            raise ValidationError("add", f"{path} was written with {key}={have!r}, this command asks for "
                                         f"{want!r}; give the same problem, seeds and options, or a new --out")
    return list(old.get("runs", []))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    previous, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        return _main(args)
    except PyrodpsError as e:
        print(f"pyrodps: error: {e}", file=sys.stderr)
        from pyrodps.run.stop import RunInterrupted

        if isinstance(e, RunInterrupted):
            print(f"pyrodps: resume with: pyrodps run --resume {args.resume or args.out}", file=sys.stderr)
            return e.exit_code
        return 2
    except KeyboardInterrupt as e:  # a second SIGINT/SIGTERM (StopNow), or Ctrl-C outside a run
        signum = getattr(e, "signum", 2)
        folder = getattr(args, "resume", None) or getattr(args, "out", None)
        hint = f"; resume from the last checkpoint with: pyrodps run --resume {folder}" if args.command == "run" else ""
        print(f"pyrodps: stopped at once{hint}", file=sys.stderr)
        return 128 + signum
    finally:
        warnings.showwarning = previous


def _main(args: argparse.Namespace) -> int:
    from pyrodps.app.data_parallel import check_single_process, run_request

    check_single_process(args.command)  # under torchrun (WORLD_SIZE > 1) only `run` is data-parallel
    if args.command == "run":
        from pyrodps.app.runner import RunRequest, resume_request

        if args.resume is not None:
            _check_resume_alone(args)
            req = resume_request(args.resume)
        else:
            for flag in ("method", "out"):
                if getattr(args, flag) is None:
                    raise ValidationError(flag, f"--{flag} is required (or --resume DIR)")
            req = RunRequest(_problem_spec(args), args.method, args.out, args.steps, args.seed, args.force,
                             chains=args.chains, track_weights=args.track_weights,
                             checkpoint_every=args.checkpoint_every, on_divergence=args.on_divergence,
                             memory_budget_mib=args.memory_budget_mib, config=_config_fields(args))
        metrics = run_request(req, progress=not args.no_progress)  # data-parallel under torchrun
        if metrics is None:  # a rank > 0 of a data-parallel run: rank 0 reports
            return 0
        print(json.dumps({k: metrics[k] for k in SUMMARY_ROWS if k in metrics}, indent=2))
    elif args.command == "compare":
        from pyrodps.app.compare import check_methods, compare, format_summary
        from pyrodps.app.runner import check_output_dir, machine_description
        from pyrodps.errors import check_positive_int
        from pyrodps.run.lock import check_unlocked, folder_lock

        spec = _problem_spec(args)
        spec.validate()
        methods = check_methods([m.strip() for m in args.methods.split(",") if m.strip()])
        config = _config_fields(args)
        seeds = _seeds(args.seeds)
        if args.steps is not None:
            check_positive_int("steps", args.steps)
        check_unlocked(args.out)
        header = {"scenario": spec.name, "scenario_options": spec.options, "steps": args.steps,
                  "config": config, "standardise": spec.standardise}
        previous = _comparison_to_extend(args.out, header, seeds, not args.no_references) if args.add else None
        if not args.add:
            check_output_dir(args.out, args.force)
        with folder_lock(args.out):
            result = compare(spec.build, methods, seeds, args.out, steps=args.steps, progress=not args.no_progress,
                             header={**header, "machine": machine_description()}, config=config,
                             references=not args.no_references, previous=previous)
        print(format_summary(result))
        print(f"wrote {args.out / 'comparison.json'}")
    elif args.command == "summarize":
        print(summarize(args.dirs))
    elif args.command == "report":
        from pyrodps.diagnostics.convergence import ConvergenceThresholds
        from pyrodps.diagnostics.report import write_report

        thresholds = ConvergenceThresholds(
            max_rhat=args.max_rhat, min_ess_bulk_per_chain=args.min_ess_per_chain,
            min_weight_pass_fraction=args.min_weight_pass_fraction, max_rhat_across=args.max_rhat_across,
            min_weight_rank_correlation=args.min_weight_rank_correlation,
            max_auroc_spread=args.max_auroc_spread, max_accuracy_spread=args.max_accuracy_spread)
        result = write_report(args.dir, args.compare, thresholds, suspects=args.suspects)
        conv = result.convergence
        print(conv.verdict() if conv is not None else "no posterior draws in this folder: no convergence verdict")
        for line in conv.failures() if conv is not None else []:
            print(f"  {line}")
        print(f"wrote {result.path}")
        if (args.dir / "suspects.csv").is_file():
            print(f"wrote {args.dir / 'suspects.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
