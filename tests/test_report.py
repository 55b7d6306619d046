"""``pyrodps run --chains`` writes posterior.nc; ``pyrodps report`` writes a self-contained page whose
numbers are those of metrics.json and convergence.json, which leads with the function-space verdict
(within-chain and across-chain checks, the chains' agreement figure), then parameter space and the
pooled per-quantity table covering every tracked quantity; a deliberately short run fails. The pooled
table (:func:`diagnose`) is right on known draws: a long run of a well-mixing sampler passes. The
split verdict itself is tested in ``tests/test_convergence_split.py``."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pyrodps.app.cli import main
from pyrodps.crosscheck.nuts import digits_logistic_regression, run_sgld
from pyrodps.diagnostics.arviz_adapter import group, read_netcdf
from pyrodps.diagnostics.convergence import ConvergenceThresholds, diagnose
from pyrodps.diagnostics.report import flatten, format_value
from pyrodps.errors import ValidationError

SCENARIO = ["--scenario", "digits-label-noise", "--no-progress"]


class Page(HTMLParser):
    """Every tag with its attributes, and the text of every ``data-key`` cell."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.cells: list[dict] = []
        self.rows: dict[str, list[str]] = {}  # table id -> the header cell of every body row
        self._table: str | None = None
        self._cell: dict | None = None
        self._th: list[str] | None = None
        self._in_body = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "table":
            self._table = a.get("id")
            self.rows.setdefault(self._table, [])
        elif tag == "td" and "data-key" in a:
            self._cell = {"table": self._table, "key": a["data-key"], "value": json.loads(a["data-value"]), "text": ""}
        elif tag == "tbody":
            self._in_body = True
        elif tag == "th" and self._table is not None and self._in_body:
            self._th = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append(self._cell)
            self._cell = None
        elif tag == "th" and self._th is not None:
            self.rows[self._table].append("".join(self._th))
            self._th = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        if self._th is not None:
            self._th.append(data)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    assert main(["run", *SCENARIO, "--method", "bads", "--steps", "120", "--chains", "2", "--out", str(root / "bads")]) == 0
    assert main(["run", *SCENARIO, "--method", "mixing", "--steps", "40", "--out", str(root / "sgd")]) == 0
    assert main(["compare", "--scenario", "digits-label-noise", "--methods", "bads,mixing", "--seeds", "0", "--steps", "40",
                 "--out", str(root / "cmp"), "--no-progress"]) == 0
    assert main(["report", str(root / "bads"), "--compare", str(root / "cmp")]) == 0
    assert main(["report", str(root / "sgd")]) == 0
    return root


def page(run_dir: Path) -> Page:
    return Page((run_dir / "report.html").read_text(encoding="utf-8"))


def test_run_writes_the_posterior_of_every_chain(runs):
    data = read_netcdf(runs / "bads" / "posterior.nc")
    post = group(data, "posterior")
    # 120 steps, the default burn-in (half) and thinning (10): draws at steps 60, 70, ..., 110
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 6 and post.sizes["point"] == 200
    warm = group(data, "warmup_posterior")  # the burn-in's NLL at every 10th step, for the burn-in figure
    assert warm.sizes["draw"] == 6 and set(warm.data_vars) == {"train_nll", "meta_nll"}
    assert json.loads((runs / "bads" / "config.json").read_text())["config"]["chains"] == 2
    with np.load(runs / "bads" / "weights.npz") as w:
        assert w["loss"].shape == w["mean"].shape and np.all(w["loss"] >= 0)
    assert not (runs / "sgd" / "posterior.nc").exists()


def test_all_weights_can_be_tracked(tmp_path):
    out = tmp_path / "all"
    assert main(["run", *SCENARIO, "--method", "bads", "--steps", "30", "--track-weights", "all", "--out", str(out)]) == 0
    post = group(read_netcdf(out / "posterior.nc"), "posterior")
    num_train = json.loads((out / "metrics.json").read_text())["num_train"]
    np.testing.assert_array_equal(post["w"].coords["point"].values, np.arange(num_train))


@pytest.mark.parametrize("extra", [["--method", "mixing", "--chains", "2"], ["--method", "mixing", "--track-weights", "all"],
                                   ["--method", "bads", "--chains", "0"], ["--method", "bads", "--track-weights", "-1"]])
def test_bad_run_options_are_refused_before_any_work(tmp_path, extra, capsys):
    assert main(["run", *SCENARIO, *extra, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert ("chains" in err) if "--chains" in extra else ("track_weights" in err)
    assert not (tmp_path / "x").exists()


def test_page_is_self_contained(runs):
    for run in ("bads", "sgd"):
        p = page(runs / run)
        tags = {t for t, _ in p.tags}
        assert "script" not in tags and "link" not in tags and "iframe" not in tags
        for tag, attrs in p.tags:
            for name in ("src", "href", "srcset", "data", "action"):
                if name in attrs:
                    assert tag == "img" and name == "src" and attrs[name].startswith("data:image/png;base64,"), (tag, attrs)
        text = (runs / run / "report.html").read_text()
        assert "http://" not in text and "https://" not in text and "url(" not in text


def test_every_figure_is_embedded(runs):
    imgs = [a["src"] for t, a in page(runs / "bads").tags if t == "img"]
    # chains' agreement, traces, weight traces, weight R-hat/ESS, accuracy, burn-in, weights by group,
    # weight vs loss, ranked weights, the comparison chart and the comparison's two PNGs
    assert len(imgs) == 12
    for src in imgs:
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    assert len([t for t, _ in page(runs / "sgd").tags if t == "img"]) == 0  # no posterior, no weights


@pytest.mark.parametrize("run", ["bads", "sgd"])
def test_every_metric_matches_metrics_json(runs, run):
    metrics = flatten(json.loads((runs / run / "metrics.json").read_text()))
    cells = {c["key"]: c for c in page(runs / run).cells if c["table"] == "metrics"}
    assert set(cells) == set(metrics)
    for key, value in metrics.items():
        assert cells[key]["value"] == value, key
        assert cells[key]["text"] == format_value(value), key


def test_convergence_table_has_every_tracked_quantity(runs):
    p = page(runs / "bads")
    conv = json.loads((runs / "bads" / "convergence.json").read_text())
    expected = ["train_nll", "meta_nll", "param_norm", *(f"theta_projection[{k}]" for k in range(4)), "test_accuracy"]
    assert sorted(p.rows["convergence"]) == sorted(expected)
    table = conv["pooled_table"]
    assert sorted(q["name"] for q in table["quantities"]) == sorted(expected)
    for q in table["quantities"]:
        assert set(q) >= {"rhat", "ess_bulk", "ess_tail", "mcse_mean"}
    assert table["weights"]["num_tracked"] == 200
    assert "fraction_passed" in p.rows["weight-convergence"]
    ps = [q["name"] for q in conv["parameter_space"]["quantities"]]
    assert ps == ["param_norm", *(f"theta_projection[{k}]" for k in range(4))] == p.rows["parameter-space"]


def test_a_short_run_is_not_converged(runs):
    conv = json.loads((runs / "bads" / "convergence.json").read_text())
    assert conv["passed"] is False and conv["function_space"]["passed"] is False and conv["failures"]
    failing = [c for c in conv["function_space"]["checks"] if not c["passed"]]
    assert len(failing) == len(conv["failures"]) and all(c["name"] in f for c, f in zip(failing, conv["failures"]))
    verdict = next(a for t, a in page(runs / "bads").tags if a.get("id") == "verdict")
    assert verdict["data-passed"] == "false"
    assert "NOT CONVERGED in function space" in (runs / "bads" / "report.html").read_text()
    assert next(a for t, a in page(runs / "sgd").tags if a.get("id") == "verdict")["data-passed"] == "none"


def test_page_leads_with_the_function_space_verdict(runs):
    text = (runs / "bads" / "report.html").read_text()
    order = ['id="verdict"', 'id="failures"', 'id="within-chain"', 'id="within-chain-weights"', 'id="across-chains"',
             "Do the chains agree?", 'id="parameter-space-explanation"', 'id="parameter-space"', 'id="convergence"',
             'id="metrics"', "Traces and rank plots"]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions)


def test_convergence_sections_match_convergence_json(runs):
    conv = json.loads((runs / "bads" / "convergence.json").read_text())
    cells = {c["key"]: c for c in page(runs / "bads").cells}
    checks = conv["function_space"]["checks"]
    within = [c for c in checks if c["scope"] == "within-chain"]
    across = [c for c in checks if c["scope"] == "across-chains"]
    assert {c["chain"] for c in within} == {0, 1}
    for c in within:
        stat = "fraction_passed" if c["quantity"] == "w" else ("rhat" if "R-hat" in c["name"] else "ess_bulk")
        cell = cells[f"chain{c['chain']}.{c['quantity']}.{stat}"]
        assert cell["value"] == c["value"] and cell["text"] == format_value(c["value"])
    assert len(across) == 4  # pooled weight R-hat, one pair's rank correlation, AUROC and accuracy spreads
    for i, c in enumerate(across):
        assert cells[f"across.{i}.value"]["value"] == c["value"]
        assert cells[f"across.{i}.passed"]["value"] == ("yes" if c["passed"] else "no")
    for q in conv["parameter_space"]["quantities"]:
        assert cells[q["name"] + ".rhat"]["value"] == q["rhat"]


def test_comparison_section_matches_comparison_json(runs):
    summary = json.loads((runs / "cmp" / "comparison.json").read_text())["summary"]
    cells = [c for c in page(runs / "bads").cells if c["table"] == "comparison"]
    assert {c["key"].split(".")[0] for c in cells} == set(summary)
    for c in cells:
        method, metric = c["key"].split(".", 1)
        assert c["value"] == summary[method][metric]


def test_bad_report_inputs_write_nothing(runs, tmp_path):
    assert main(["report", str(tmp_path / "missing")]) == 2
    run = tmp_path / "run"
    shutil.copytree(runs / "bads", run, ignore=shutil.ignore_patterns("report.html", "convergence.json"))
    assert main(["report", str(run), "--compare", str(tmp_path)]) == 2  # no comparison.json there
    assert main(["report", str(run), "--max-rhat", "1.0"]) == 2
    assert main(["report", str(run), "--min-weight-pass-fraction", "2"]) == 2
    assert main(["report", str(run), "--max-rhat-across", "0.9"]) == 2
    assert main(["report", str(run), "--min-weight-rank-correlation", "1.5"]) == 2
    assert main(["report", str(run), "--max-auroc-spread", "-0.1"]) == 2
    assert main(["report", str(run), "--max-accuracy-spread", "nan"]) == 2
    assert not (run / "report.html").exists() and not (run / "convergence.json").exists()


def _draws(chains: int, draws: int, *, shift: float = 0.0, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(chains, draws)) + shift * np.arange(chains)[:, None]
    w = rng.uniform(size=(chains, draws, 30))
    return xr.Dataset({"x": (("chain", "draw"), x), "w": (("chain", "draw", "point"), w)},
                      coords={"point": np.arange(30) * 7})


def test_verdict_and_thresholds_on_known_draws():
    assert diagnose(_draws(4, 500)).passed
    shifted = diagnose(_draws(4, 500, shift=1.0))
    assert not shifted.passed and shifted.failures()[0].startswith("x: R-hat")
    few = diagnose(_draws(4, 50))  # bulk ESS about 200 < 100 x 4
    assert not few.passed and "bulk ESS" in few.failures()[0]
    assert diagnose(_draws(4, 50), ConvergenceThresholds(max_rhat=1.1, min_ess_bulk_per_chain=10)).passed
    drift = _draws(1, 400)
    drift["x"] = drift["x"] + xr.DataArray(np.linspace(0, 4, 400), dims="draw")
    assert not diagnose(drift).passed  # one chain: its halves stand as two chains
    const = _draws(2, 100)
    const["x"] = xr.zeros_like(const["x"])
    assert "undefined" in diagnose(const).failures()[0]
    bad_weights = _draws(4, 500)
    bad_weights["w"][:, :, :6] += np.arange(4)[:, None, None]  # 6 of 30 points (20 %) fail
    r = diagnose(bad_weights)
    assert r.weights.fraction_passed == pytest.approx(0.8) and not r.passed
    assert diagnose(bad_weights, ConvergenceThresholds(min_weight_pass_fraction=0.75)).passed
    with pytest.raises(ValidationError, match="max_rhat"):
        ConvergenceThresholds(max_rhat=0.99).validate()


def test_verdict_on_a_real_sampler_short_fails_long_passes():
    """SGLD on the logistic-regression posterior from dispersed starts: 100 steps fail, 6,000 pass."""
    problem = digits_logistic_regression()

    def posterior(steps: int, burn_in: int) -> xr.Dataset:
        draws = run_sgld(problem, step_size=0.2, num_steps=steps, burn_in=burn_in, thin=5, chains=4, seed=3)
        return xr.Dataset({"beta": (("chain", "draw", "coef"), draws)})

    assert not diagnose(posterior(100, 0)).passed
    assert diagnose(posterior(6000, 500)).passed


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium) on PATH")
def test_page_renders_in_a_headless_browser_without_console_errors(runs):
    """Chromium loads the page from a file URL with logging to stderr; the page has no script, so any
    console line (a JS error, a blocked or missing resource) is a failure."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
           "--dump-dom", (runs / "bads" / "report.html").as_uri()]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pyrodps report" in done.stdout and "<img" in done.stdout
    errors = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line
              or "Failed to load resource" in line]
    assert not errors, errors


def test_report_lists_the_least_trusted_points_and_writes_suspects_csv(runs):
    import csv

    folder = runs / "bads"
    with np.load(folder / "weights.npz") as f:
        weights = {k: f[k] for k in f.files}
    with open(folder / "suspects.csv") as f:
        rows = list(csv.DictReader(f))
    n = weights["mean"].shape[0]
    assert len(rows) == n and {int(r["index"]) for r in rows} == set(range(n))  # one row per training point
    means = [float(r["weight_mean"]) for r in rows]
    assert means == sorted(means)
    first = int(rows[0]["index"])
    assert float(rows[0]["weight_mean"]) == pytest.approx(weights["mean"][first], rel=1e-5)
    assert int(rows[0]["given_label"]) == weights["label"][first]
    assert int(rows[0]["predicted_label"]) == weights["predicted"][first]
    assert float(rows[0]["loss"]) == pytest.approx(weights["loss"][first], rel=1e-5)
    assert rows[0]["corrupted"] in ("True", "False")
    # the page shows the first 20, the same rows in the same order
    shown = [c["value"] for c in page(folder).cells if c["table"] == "suspects" and c["key"].endswith(".index")]
    assert shown == [int(r["index"]) for r in rows[:20]]
    # on the least-trusted points, BADS mostly found flipped labels
    assert np.mean([r["corrupted"] == "True" for r in rows[:20]]) > 0.7
    assert not (runs / "sgd" / "suspects.csv").exists()  # mixing has no weights
