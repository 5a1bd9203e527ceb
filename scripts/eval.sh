#!/usr/bin/env bash
# The accuracy report of the default scenario, end to end on a local broker:
# a fresh Kafka, `epitrace topics create`, `epitrace run`, `epitrace sim
# --publish` (feeds pseudonymised and published as providers would; ground
# truth to OUT), wait until every processor is idle, then `epitrace eval`.
#
#   scripts/eval.sh [OUT]            # default OUT: .eval/ (git-ignored)
#   EVAL_SIM_FLAGS="--residents 2000 --days 3" scripts/eval.sh
#
# Needs the release binary (make eval builds it) at $EPITRACE_BIN. Run under
# scripts/with-kafka.sh (make eval does), which provides and stops the broker.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/.eval}"
BIN="${EPITRACE_BIN:?set EPITRACE_BIN to the epitrace binary}"
PORT="${EVAL_METRICS_PORT:-9469}"
BROKERS="${EPITRACE_TEST_BROKERS:?run under scripts/with-kafka.sh}"

rm -rf "$OUT"
mkdir -p "$OUT"
export EPITRACE_BROKERS="$BROKERS"
"$BIN" topics create >/dev/null

"$BIN" run --state-dir "$OUT/state" --set "metrics.listen=127.0.0.1:$PORT" 2>"$OUT/run.log" &
RUN=$!
trap 'kill -TERM $RUN 2>/dev/null || true; wait $RUN 2>/dev/null || true' EXIT

started=$(date +%s)
# shellcheck disable=SC2086 # flags are meant to split
"$BIN" sim --out "$OUT" --publish ${EVAL_SIM_FLAGS:-}
echo "eval: published after $(($(date +%s) - started)) s; waiting for the pipeline"

total() {
  curl -fsS "http://127.0.0.1:$PORT/metrics" |
    awk '/^epitrace_input_records_total/ { s += $2 } END { printf "%d\n", s }'
}
prev=-1
while true; do
  sleep 20
  now=$(total)
  [ "$now" = "$prev" ] && break
  prev=$now
done
echo "eval: pipeline idle after $(($(date +%s) - started)) s ($now records in)"
"$BIN" eval --truth "$OUT" --json "$OUT/eval.json" --examples "$OUT/examples.csv" | tee "$OUT/eval.txt"
