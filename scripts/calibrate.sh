#!/usr/bin/env bash
# Fits the exposure likelihood model (`[tracing.likelihood]`) on simulated
# cities other than the evaluation's (make eval: seed 2020), end to end on a
# local broker: for each calibration seed, scripts/eval.sh (a fresh broker,
# the pipeline, `sim --publish`, `eval --examples`), then `epitrace
# calibrate` on all the examples; writes deploy/calibration/likelihood.toml
# with its provenance. Copy its numbers into the defaults of
# crates/core/src/likelihood.rs and deploy/epitrace.example.toml (a test
# checks that the three agree).
#
#   scripts/calibrate.sh [OUT]     # default OUT: .calibration/ (git-ignored)
#   CALIBRATION_SEEDS="11 12" CALIBRATION_SIM_FLAGS="--days 4" scripts/calibrate.sh
#
# Needs the release binary at $EPITRACE_BIN (make calibrate builds it); each
# seed runs under scripts/with-kafka.sh with a broker of its own.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/.calibration}"
BIN="${EPITRACE_BIN:?set EPITRACE_BIN to the epitrace binary}"
SEEDS="${CALIBRATION_SEEDS:-11 12}"
FLAGS="${CALIBRATION_SIM_FLAGS:---days 4}"

mkdir -p "$OUT"
files=()
for seed in $SEEDS; do
  if [ "$seed" = 2020 ]; then
    echo "calibrate: seed 2020 is the evaluation's; pick others" >&2
    exit 2
  fi
  echo "calibrate: seed $seed ($FLAGS)"
  EVAL_SIM_FLAGS="--seed $seed $FLAGS" "$ROOT/scripts/with-kafka.sh" \
    "$ROOT/scripts/eval.sh" "$OUT/seed-$seed" >"$OUT/seed-$seed.log" 2>&1
  files+=("$OUT/seed-$seed/examples.csv")
done
"$BIN" calibrate "${files[@]}" \
  --provenance "epitrace calibrate on make eval's city model (20,000 residents, $FLAGS) with seeds ${SEEDS// /, }, $(date -u +%Y-%m-%d)" \
  --out "$ROOT/deploy/calibration/likelihood.toml"
