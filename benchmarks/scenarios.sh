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
# the harmful corruptions (benchmarks/harm.py: harm >= 3 points): BADS against the oracle and L2RW (MW-Net
# and cleanlab on the pair flips, a label corruption); --add puts the baselines into the same comparison
for s in digits-pair-flip digits-input-swap mnist1d-pair-flip mnist1d-open-set mnist1d-input-swap mnist1d-off-domain; do
  out="benchmarks/results/compare/$s"
  "$PY" -m pyrodps compare --scenario "$s" --methods bads --seeds "$SEEDS" --out "$out" --force --no-progress
  "$PY" -m pyrodps compare --scenario "$s" --methods l2rw --seeds "$SEEDS" --out "$out" --add --no-progress
done
for s in digits-pair-flip mnist1d-pair-flip; do
  "$PY" -m pyrodps compare --scenario "$s" --methods mwn,cleanlab --seeds "$SEEDS" \
    --out "benchmarks/results/compare/$s" --add --no-progress
done
# class imbalance where reweighting can matter (MNIST-1D generated at 40,000 samples), the small digits
# long tail, and the rebuilt 4 vs 9: table, companion and grouped weights against the class-balanced loss
"$PY" -m pyrodps compare --scenario mnist1d-imbalance --num-samples 40000 \
  --methods bads,bads-companion,bads-grouped,l2rw,mwn,class-balanced --seeds "$SEEDS" \
  --out benchmarks/results/compare/mnist1d-imbalance-40k --force --no-progress
"$PY" -m pyrodps compare --scenario digits-imbalance --methods bads,bads-companion,bads-grouped,l2rw,mwn,class-balanced \
  --seeds "$SEEDS" --out benchmarks/results/compare/digits-imbalance-companion --force --no-progress
"$PY" -m pyrodps compare --scenario mnist1d-binary-imbalance --methods bads,bads-companion,bads-grouped,l2rw,class-balanced \
  --seeds "$SEEDS" --out benchmarks/results/compare/mnist1d-binary-imbalance --force --no-progress
# sources of unequal label noise (the source of each point known): per-point weights alone, and times
# per-source weights, against the BLO baselines and cleanlab
for s in digits-source-noise mnist1d-source-noise; do
  "$PY" -m pyrodps compare --scenario "$s" --methods bads,bads-point-group,l2rw,mwn,cleanlab --seeds "$SEEDS" \
    --out "benchmarks/results/compare/$s" --force --no-progress
done
# real text (the `text` extra): tweets as MiniLM embeddings, with label noise and as a mixture of sources
"$PY" -m pyrodps compare --scenario text-label-noise --methods bads,cleanlab-logreg --seeds "$SEEDS" \
  --out benchmarks/results/compare/text-label-noise --force --no-progress
"$PY" -m pyrodps compare --scenario text-mixture --methods bads,bads-point-group --seeds "$SEEDS" \
  --out benchmarks/results/compare/text-mixture --force --no-progress
# the small MNIST-1D long tail (default size): grouped weights and the table companion against mixing
"$PY" -m pyrodps compare --scenario mnist1d-imbalance --methods bads-companion,bads-grouped --seeds "$SEEDS" \
  --out benchmarks/results/compare/mnist1d-imbalance-grouped --force --no-progress
