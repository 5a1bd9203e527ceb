#!/usr/bin/env bash
# `make up`: the main job on the real local Kafka broker, in one command.
#
#   1. checks the prerequisites (scripts/bootstrap.sh) and builds the binary
#      (the debug build `make demo` and `make test` share);
#   2. starts the local broker (scripts/kafka-local.sh; reused, and then
#      left running, when it is already up);
#   3. creates the topics and starts the whole pipeline (`epitrace run`) on
#      a fresh state directory, waiting until it is ready;
#   4. publishes a small simulated city through the producers
#      (`epitrace sim --publish`) and waits until it has been traced
#      (`epitrace wait`);
#   5. prints the clusters, one case's timeline, and where the metrics are;
#   6. leaves it all running until Ctrl-C (or SIGTERM), then stops the
#      pipeline and the broker it started.
#
# Everything it writes lives under EPITRACE_UP_DIR (default <repo>/.epitrace-up,
# git-ignored): state/ (RocksDB), city/ (the simulator's truth and demo key),
# pipeline.log.
#
# Environment: UP_RESIDENTS (1000), UP_DAYS (2), UP_SEED (2020),
# UP_METRICS_LISTEN (127.0.0.1:9464), EPITRACE_UP_DIR, EPITRACE_BIN (a built
# binary to use instead of building), UP_EXIT=1 (stop everything after
# printing instead of waiting for Ctrl-C), and KAFKA_LOCAL_* as for
# scripts/kafka-local.sh (port, data dir).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KL="$ROOT/scripts/kafka-local.sh"
PORT="${KAFKA_LOCAL_PORT:-9092}"
BROKERS="127.0.0.1:$PORT"
UP_DIR="${EPITRACE_UP_DIR:-$ROOT/.epitrace-up}"
RESIDENTS="${UP_RESIDENTS:-1000}"
DAYS="${UP_DAYS:-2}"
SEED="${UP_SEED:-2020}"
LISTEN="${UP_METRICS_LISTEN:-127.0.0.1:9464}"
URL="http://$LISTEN"

say() { echo "up: $*"; }
die() { echo "up: $*" >&2; exit 1; }

"$ROOT/scripts/bootstrap.sh" --quiet test

if [ -n "${EPITRACE_BIN:-}" ]; then
  BIN="$EPITRACE_BIN"
else
  CARGO="${CARGO:-cargo}"
  say "building epitrace (the debug build make demo and make test share)"
  "$CARGO" build -q -p epitrace --manifest-path "$ROOT/Cargo.toml"
  TARGET_DIR="$("$CARGO" metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
  BIN="$TARGET_DIR/debug/epitrace"
fi
[ -x "$BIN" ] || die "no epitrace binary at $BIN"

started_broker=0
pipeline_pid=""
# shellcheck disable=SC2317 # reached through the traps
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$pipeline_pid" ] && kill -0 "$pipeline_pid" 2>/dev/null; then
    say "stopping the pipeline"
    kill -TERM "$pipeline_pid" 2>/dev/null || true
    wait "$pipeline_pid" 2>/dev/null || true
  fi
  if ((started_broker)); then
    say "stopping the broker"
    "$KL" stop >/dev/null || echo "up: stopping the broker failed" >&2
  fi
  say "stopped"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if "$KL" status >/dev/null 2>&1; then
  say "using the local broker already running on $BROKERS (left running afterwards)"
else
  started_broker=1
  say "starting the local broker on $BROKERS"
  "$KL" start >/dev/null
fi

"$BIN" topics create --brokers "$BROKERS" >/dev/null
say "topics created"

mkdir -p "$UP_DIR"
rm -rf "$UP_DIR/state"
# A fresh consumer group per run: the fresh state starts from the
# beginning of the topics, and identical records (deterministic ids) fold
# into the same results.
group="epitrace-up-$(date +%s)"
"$BIN" run --brokers "$BROKERS" --state-dir "$UP_DIR/state" \
  --set "metrics.listen=$LISTEN" --set "kafka.group_prefix=$group" \
  >"$UP_DIR/pipeline.log" 2>&1 &
pipeline_pid=$!
say "pipeline started (pid $pipeline_pid, log $UP_DIR/pipeline.log)"
for _ in $(seq 1 120); do
  kill -0 "$pipeline_pid" 2>/dev/null || die "the pipeline exited; see $UP_DIR/pipeline.log"
  "$BIN" health --url "$URL/readyz" >/dev/null 2>&1 && break
  sleep 1
done
"$BIN" health --url "$URL/readyz" >/dev/null 2>&1 || die "the pipeline is not ready after 120 s; see $UP_DIR/pipeline.log"
say "pipeline ready"

rm -rf "$UP_DIR/city"
say "publishing a simulated city ($RESIDENTS residents, $DAYS days, seed $SEED)"
"$BIN" sim --publish --out "$UP_DIR/city" --residents "$RESIDENTS" --days "$DAYS" \
  --seed "$SEED" --brokers "$BROKERS" | sed 's/^/up: /'
say "tracing"
"$BIN" wait --url "$URL" --quiet-s 5 | sed 's/^/up: /'

export EPITRACE_ACTOR="${EPITRACE_ACTOR:-make-up}"
export EPITRACE_PURPOSE="${EPITRACE_PURPOSE:-make up: local demonstration on simulated data}"
echo
"$BIN" clusters --brokers "$BROKERS"
case_id="$(sed -n 2p "$UP_DIR/city/truth/cases.csv" | cut -d, -f1)"
if [ -n "$case_id" ]; then
  echo
  "$BIN" case "$case_id" --brokers "$BROKERS"
fi
echo
say "traced. Metrics: $URL/metrics  readiness: $URL/readyz  pipeline log: $UP_DIR/pipeline.log"
say "more: EPITRACE_ACTOR=you EPITRACE_PURPOSE=why $BIN case ID --brokers $BROKERS  (case ids in $UP_DIR/city/truth/cases.csv)"
if [ "${UP_EXIT:-0}" = 1 ]; then
  exit 0
fi
say "running until Ctrl-C"
wait "$pipeline_pid"
