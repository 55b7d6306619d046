"""The package's layout: imports run only downward, the SG-MCMC layer knows no model, the driver knows
no BADS, and the BADS density is written once (plus its Pyro specification)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pyrodps"
# lowest first: a module may import from its own layer and the layers below it
LAYERS = ["base", "sgmcmc", "run", "models", "data", "diagnostics", "infer", "baselines", "bads", "parallel", "crosscheck",
          "app",
          "compat"]
BASE = {"errors", "io", "plugins", "version"}
COMPAT = {"inference", "selection", "__init__", "__main__"}


def layer_of(module: str) -> str:
    """``pyrodps.x.y`` -> the layer of ``x``."""
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "__init__"
    if head in BASE:
        return "base"
    if head in COMPAT:
        return "compat"
    return head


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1] if len(parts) > 2 else [*parts[:-1], "__init__"]
    return ".".join(parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                lines.update(range(sub.lineno, (sub.end_lineno or sub.lineno) + 1))
    return lines


def imports(path: Path) -> list[str]:
    """Every ``pyrodps`` module imported anywhere in the file (also inside functions), except under
    ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    out = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("pyrodps")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pyrodps"):
            out.append(node.module)
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_known_layer():
    unknown = {layer_of(module_name(p)) for p in MODULES} - set(LAYERS)
    assert not unknown, f"modules outside the layers {LAYERS}: {unknown}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_downward(path):
    own = LAYERS.index(layer_of(module_name(path)))
    upward = [m for m in imports(path) if LAYERS.index(layer_of(m)) > own]
    assert not upward, f"{path.name} imports from higher layers: {upward}"


def test_the_sgmcmc_layer_imports_no_model_and_the_driver_knows_no_bads():
    for path in (PACKAGE / "sgmcmc").rglob("*.py"):
        assert {layer_of(m) for m in imports(path)} <= {"base", "sgmcmc"}, path
    driver = (PACKAGE / "run" / "driver.py").read_text()
    for word in ("BADS", "weight", "num_points", '"w"', '"idx"', "stats", "theta"):
        assert word not in driver, f"the driver names {word!r}"


def test_the_bads_density_is_written_once():
    """``ρ_θ``/``rho_theta`` times a loss appears in the Pyro program and in the potential only."""
    pattern = re.compile(r"rho_theta\s*\*\s*(torch\.sigmoid|w\b|sigmoid)|rho_meta\s*\*\s*self\.num_meta|"
                         r"rho_theta \* m\.num_train|rho_meta \* m\.num_meta")
    where = sorted(str(p.relative_to(PACKAGE)) for p in MODULES if pattern.search(p.read_text()))
    assert where == ["models/bads.py", "models/potential.py"], where
