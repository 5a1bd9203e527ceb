#!/usr/bin/env bash
# Runs a command against a fresh local Schema Registry:
#
#   scripts/with-kafka.sh scripts/with-registry.sh cargo test --workspace
#
# Resets and starts the registry of scripts/registry-local.sh (empty every
# time, so tests never see stale subjects), exports
# EPITRACE_TEST_REGISTRY=http://127.0.0.1:<port>/apis/ccompat/v7 (and
# EPITRACE_TEST_REGISTRY_SCRIPT, for tests that stop and start it), runs the
# command, and always stops the registry on exit. Exits with the command's
# exit code. REGISTRY_LOCAL_PORT etc. are passed through.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RL="$ROOT/scripts/registry-local.sh"

(($# >= 1)) || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

started=0
# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((started)); then
    "$RL" stop >&2 || echo "with-registry: stopping the registry failed" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if "$RL" status >/dev/null 2>&1; then
  echo "with-registry: a local registry is already running; it would be reset. Stop it first (make registry-down)." >&2
  exit 2
fi
started=1
"$RL" reset >&2
"$RL" start >&2

export EPITRACE_TEST_REGISTRY
EPITRACE_TEST_REGISTRY="$("$RL" url)"
export EPITRACE_TEST_REGISTRY_SCRIPT="$RL"
set +e
"$@"
rc=$?
set -e
exit "$rc"
