#!/usr/bin/env bash
# Every scenario, every method, seeds 0,1,2: the comparisons behind the README's results tables.
#   bash benchmarks/scenarios.sh [SEEDS] ; then python benchmarks/meta_sweep.py ; python benchmarks/readme_table.py
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="${1:-0,1,2}"
PY=${PY:-.venv/bin/python}
METHODS=bads,bads-no-meta,bads-v0.1,bads-companion,bads-weightnet,mixing,meta-only,dup-meta,oracle,random-select
for data in digits mnist1d; do
  for kind in label-noise imbalance binary-imbalance feature-noise off-domain; do
    s="$data-$kind"
    "$PY" -m pyrodps compare --scenario "$s" --methods "$METHODS" --seeds "$SEEDS" \
      --out "benchmarks/results/compare/$s" --force --no-progress
  done
  s="$data-feature-noise"
  "$PY" -m pyrodps compare --scenario "$s" --feature-noise-kind occlusion --methods "$METHODS" --seeds "$SEEDS" \
    --out "benchmarks/results/compare/$s-occlusion" --force --no-progress
done
# regression with gross outliers: BADS against mixing, the oracle and the BLO baselines, same likelihood
for s in friedman-outliers diabetes-outliers; do
  "$PY" -m pyrodps compare --scenario "$s" --methods bads,bads-no-meta,mixing,oracle,meta-only,l2rw,mwn \
    --seeds "$SEEDS" --out "benchmarks/results/compare/$s" --force --no-progress
done
