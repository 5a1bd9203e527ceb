#!/usr/bin/env bash
# Runs a command against a fresh local Kafka broker:
#
#   scripts/with-kafka.sh cargo test --workspace
#
# Resets and starts the broker of scripts/kafka-local.sh (a new, empty
# cluster every time, so tests never see stale topics), exports
# EPITRACE_TEST_BROKERS=127.0.0.1:<port>, runs the command, and always stops
# the broker on exit (success, failure, Ctrl-C or SIGTERM). Exits with the
# command's exit code.
#
# KAFKA_LOCAL_EXTERNAL=1: a broker is already running on 127.0.0.1:<port> and
# managed elsewhere (e.g. `make kafka-up`); it is neither reset, started nor
# stopped. KAFKA_LOCAL_PORT, KAFKA_LOCAL_DIR etc. are passed through to
# scripts/kafka-local.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KL="$ROOT/scripts/kafka-local.sh"
PORT="${KAFKA_LOCAL_PORT:-9092}"

(($# >= 1)) || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

started=0
# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((started)); then
    "$KL" stop >&2 || echo "with-kafka: stopping the broker failed" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${KAFKA_LOCAL_EXTERNAL:-0}" = 1 ]; then
  echo "with-kafka: using the broker already running on 127.0.0.1:$PORT (KAFKA_LOCAL_EXTERNAL=1)" >&2
else
  if "$KL" status >/dev/null 2>&1; then
    echo "with-kafka: a local broker is already running ($("$KL" status)); it would be reset." >&2
    echo "with-kafka: stop it first (make kafka-down) or reuse it with KAFKA_LOCAL_EXTERNAL=1" >&2
    exit 2
  fi
  started=1 # from here on, whatever happens, stop what we start
  "$KL" reset >&2
  "$KL" start >&2
fi

export EPITRACE_TEST_BROKERS="127.0.0.1:$PORT"
set +e
"$@"
rc=$?
set -e
exit "$rc"
